"""Fuzz harness: Standard Webhooks verification and the SIP controller's webhook endpoint.

Input: a header section (``name: value`` lines, decoded as Latin-1 like ASGI headers), a
blank line, then the body.  Three passes:

1. ``verify`` with the headers as given: only :class:`WebhookVerificationError` may escape,
   and its message never contains the secret;
2. the same body *correctly signed* (with the input's ``webhook-id`` and ``webhook-timestamp``
   when present) so that the checks after the signature (timestamp, JSON, object) are reached;
3. the signed request POSTed through the real :class:`SipController` ASGI app (in-process,
   no socket, no fleet attached): it must answer (200, 401 or 413) and never raise.
"""

from __future__ import annotations

import base64
from typing import Any

import trio

from standin.keys.webhooks import WebhookVerificationError, sign, verify
from orchestrator.sip_controller import SipController

SECRET = "whsec_" + base64.b64encode(b"rtfleet-fuzz-webhook-secret-32by").decode()
NOW = 1_750_000_000.0


def _split(data: bytes) -> tuple[dict[str, str], bytes]:
    head, _, body = data.partition(b"\n\n")
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip()] = value.strip()
    return headers, body


def _verify(body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
    try:
        event = verify(SECRET, body, headers, now=NOW)
    except WebhookVerificationError as exc:
        assert SECRET not in str(exc) and SECRET[6:] not in str(exc)
        return None
    assert isinstance(event, dict)
    return event


async def _post(body: bytes, headers: dict[str, str]) -> list[dict[str, Any]]:
    controller = SipController(webhook_secret=SECRET, clock=lambda: NOW)
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/",
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]}
    async with trio.open_nursery() as nursery:
        controller._nursery = nursery  # what serve() sets; accepted calls find no fleet
        await controller._app(scope, receive, send)
    return sent


def check(data: bytes) -> None:
    headers, body = _split(data)
    _verify(body, headers)
    msg_id = headers.get("webhook-id") or "evt_fuzz"
    try:
        stamp = int(headers.get("webhook-timestamp", ""))
    except ValueError:
        stamp = int(NOW)
    try:
        signature = sign(SECRET, msg_id, stamp, body)
    except WebhookVerificationError:
        return
    signed = {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}
    _verify(body, signed)
    sent = trio.run(_post, body, signed)
    assert sent and sent[0]["type"] == "http.response.start", sent
    assert sent[0]["status"] in (200, 401, 413), sent[0]
    for message in sent:
        assert SECRET.encode() not in message.get("body", b"")


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
