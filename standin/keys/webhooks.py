"""Standard Webhooks signing and verification, and the embedded server's webhook sender.

The hosted service signs every webhook (PROTOCOL.md "SIP") with three headers::

    webhook-id:         evt_…                      (also the event's ``id``)
    webhook-timestamp:  1735689600                 (unix seconds, as text)
    webhook-signature:  v1,<base64 HMAC-SHA256>    (space-separated when there are several)

The HMAC is over ``"{id}.{timestamp}.{body}"`` with the secret ``whsec_<base64>`` decoded
(the part after ``whsec_``). :func:`verify` checks a signature in constant time and the
timestamp (decimal digits) within a tolerance (300 s either way), and returns the parsed JSON
body, an object whose ``data`` (when present) is an object too; anything wrong raises :class:`WebhookVerificationError` (one error type, its message safe to log: it
never contains the secret).

:class:`WebhookSender` POSTs signed events with httpx, retrying failures (network errors,
non-2xx answers) a few times with doubling delays, and can deliver an event more than once on
purpose (``redeliveries``), as the hosted service may: receivers must dedupe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import trio

from actors.http import SharedHttpClient

__all__ = ["DEFAULT_TOLERANCE", "WebhookSender", "WebhookVerificationError", "call_incoming_event",
           "new_webhook_secret", "sign", "signed_headers", "verify"]

DEFAULT_TOLERANCE = 300.0
_PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    """A webhook that must not be trusted: bad or missing signature, stale timestamp, bad body."""


def new_webhook_secret() -> str:
    return _PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    raw = secret[len(_PREFIX):] if secret.startswith(_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the webhook secret is not base64 after 'whsec_'") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for one delivery."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(secret: str, msg_id: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(secret: str, body: bytes, headers: Mapping[str, str], *, now: float | None = None,
           tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """The parsed event if ``body`` carries a valid, fresh signature; else raises."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (lower.get(h) for h in
                                 ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        # digits only: int() would also take "+1", " 1 ", "1_0" and 4000-digit numbers
        raise WebhookVerificationError("webhook-timestamp is not an integer")
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is outside the {tolerance:g} s tolerance")
    expected = sign(secret, msg_id, timestamp, body).encode()
    for candidate in signatures.split():
        # as bytes: compare_digest refuses str with non-ASCII characters (TypeError)
        if candidate.startswith("v1,") and hmac.compare_digest(
                candidate.encode("utf-8", "surrogatepass"), expected):
            break
    else:
        raise WebhookVerificationError("no matching v1 signature")
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or absurdly nested
        raise WebhookVerificationError("the body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    if "data" in event and not isinstance(event["data"], dict):
        raise WebhookVerificationError("the event's data is not a JSON object")
    return event


def call_incoming_event(event_id: str, call_id: str, sip_headers: list[dict[str, str]],
                        created_at: int, *, kind: str = "realtime.call.incoming",
                        live_id: str | None = None) -> dict[str, Any]:
    """The webhook announcing a SIP call: ``realtime.call.incoming`` (``data.call_id``, the
    ``rtc_`` id) or, on the GPT-Live surface, ``live.transport.incoming`` (``data.session_id``,
    the ``live_`` id, ``type: "sip"``) / the older ``live.call.incoming``."""
    if kind == "realtime.call.incoming":
        data: dict[str, Any] = {"call_id": call_id, "sip_headers": sip_headers}
    else:
        data = {"session_id": live_id, "sip_headers": sip_headers, "sip_media_security": "rtp"}
        if kind == "live.transport.incoming":
            data["type"] = "sip"
    return {"object": "event", "id": event_id, "type": kind, "created_at": created_at, "data": data}


@attrs.define(eq=False)
class WebhookSender:
    """Delivers signed events to one URL (see the module docstring)."""

    url: str
    secret: str = attrs.field(repr=False)
    attempts: int = 5
    first_delay: float = 0.2
    timeout: float = 5.0
    #: extra deliveries of every event after the first success (to exercise receivers' dedupe)
    redeliveries: int = 0
    clock: Any = time.time
    delivered: int = 0
    failures: int = 0
    #: the client every delivery uses: made on the first, closed by :meth:`aclose`
    _http: SharedHttpClient = attrs.field(factory=SharedHttpClient)

    async def deliver(self, event: dict[str, Any]) -> bool:
        """POST ``event`` until a 2xx (then ``redeliveries`` more times); False if it never got one."""
        body = json.dumps(event, separators=(",", ":")).encode()
        ok = False
        client = self._http.get()
        for _ in range(1 + self.redeliveries):
            if not await self._post(client, event["id"], body):
                return ok
            ok = True
        return ok

    async def aclose(self) -> None:
        """Close the deliveries' HTTP client (a later delivery makes a new one)."""
        await self._http.aclose()

    async def _post(self, client: httpx.AsyncClient, msg_id: str, body: bytes) -> bool:
        delay = self.first_delay
        for attempt in range(self.attempts):
            headers = signed_headers(self.secret, msg_id, body, now=self.clock())
            try:
                response = await client.post(self.url, content=body, headers=headers,
                                             timeout=self.timeout)
                if 200 <= response.status_code < 300:
                    self.delivered += 1
                    return True
            except httpx.HTTPError:
                pass
            self.failures += 1
            if attempt + 1 < self.attempts:
                await trio.sleep(delay)
                delay *= 2
        return False
