"""The HTTP side of WebRTC calls: ``POST /v1/realtime/calls`` and ``…/{call_id}/hangup``.

Making a call (PROTOCOL.md "WebRTC")::

    POST /v1/realtime/calls                    Authorization: Bearer ek_…  (or a standard key)
    Content-Type: application/sdp              body: the SDP offer
      — or —
    Content-Type: multipart/form-data          parts "sdp" (the offer) and "session" (JSON,
                                               optional: a session config, as for client_secrets)

    201 Created   Content-Type: application/sdp   Location: /v1/realtime/calls/rtc_…
                  body: the SDP answer

The session starts from the client secret's session (or the defaults, with ``?model=`` when a
standard key is used), with the ``session`` part applied over it. The call then runs in
``rtc_session.py``. Ending a call: ``POST /v1/realtime/calls/{call_id}/hangup`` with a standard
key (``200 {}``; ``404`` ``call_not_found`` when no such call is live).

Errors (the OpenAI JSON shape ``{"error": {message, type, param, code}}``):

====================================  ======  =================================================
cause                                 status  ``error.code``
====================================  ======  =================================================
missing/unknown/expired key           401     ``invalid_api_key`` (also ``reject_keys`` faults)
Content-Type neither of the above     415     ``unsupported_media_type``
form without an ``sdp`` part          400     ``missing_required_parameter`` (param ``sdp``)
bad ``session`` JSON or value         400     ``invalid_json`` / the config error's code
not an SDP offer, no data channel     400     ``invalid_offer`` (param ``sdp``)
  or no audio
body over 1 MiB                       413     ``request_too_large``
WebRTC unavailable (extra missing,    501     ``webrtc_unavailable``
  ``webrtc=False``)
the answer took too long              503     ``answer_timeout``
====================================  ======  =================================================

Nothing of aiortc is imported until a call is actually made.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import trio

from standin.model import config as cfg
from standin.model.events import ClientError, IdFactory
from standin.front.responses import error_body, read_body, respond, respond_json
from standin.model.realtime import RealtimeSession
from standin.rtc_host import WebRtcUnavailable

if TYPE_CHECKING:
    from standin.host import AuthResult, CallHost

__all__ = ["CALLS_PATH", "handle_calls", "parse_form_data"]

CALLS_PATH = "/v1/realtime/calls"
_HANGUP = re.compile(r"^/v1/realtime/calls/(?P<call_id>[^/]+)/hangup$")


class CallRefusal(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def is_calls_path(path: str) -> bool:
    return path == CALLS_PATH or path.startswith(CALLS_PATH + "/")


async def handle_calls(server: CallHost, scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"].rstrip("/")
    hangup = _HANGUP.match(path)
    if path != CALLS_PATH and hangup is None:
        await respond_json(send, 404, error_body(f"Unknown path {scope['path']}", "not_found"))
        return
    if scope["method"] != "POST":
        await respond_json(send, 405, error_body("Use POST", "method_not_allowed"), [(b"allow", b"POST")])
        return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    try:
        if hangup is not None:
            await _hangup(server, headers, hangup.group("call_id"), send)
        else:
            await _create(server, scope, headers, receive, send)
    except CallRefusal as refusal:
        if hangup is None:
            server.stats.calls_refused += 1
        body = error_body(refusal.message, refusal.code, param=refusal.param)
        await respond_json(send, refusal.status, body)


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    return value[7:].strip() or None if value[:7].lower() == "bearer " else None


def authenticate_call(server: CallHost, headers: dict[str, str], *, allow_secret: bool) -> AuthResult:
    auth = server.authenticate(_bearer(headers), allow_secret=allow_secret)
    if auth.kind is None:
        raise CallRefusal(401, auth.reason, "invalid_api_key")
    return auth


async def _hangup(server: CallHost, headers: dict[str, str], call_id: str, send: Any) -> None:
    authenticate_call(server, headers, allow_secret=False)
    call = server.calls.get(call_id)
    if call is None or not call.live:
        raise CallRefusal(404, f"No live call with id '{call_id}'.", "call_not_found", "call_id")
    await call.hangup("hung up by request")
    await respond_json(send, 200, {})


async def _create(server: CallHost, scope: dict[str, Any], headers: dict[str, str],
                  receive: Any, send: Any) -> None:
    auth = authenticate_call(server, headers, allow_secret=True)
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in ("application/sdp", "multipart/form-data"):
        raise CallRefusal(
            415,
            "Content-Type must be application/sdp (the raw SDP offer) or multipart/form-data "
            f"with parts 'sdp' and 'session'; got {media_type or 'none'!r}.",
            "unsupported_media_type",
        )
    body = await read_body(receive)
    if body is None:
        raise CallRefusal(413, "Request body too large", "request_too_large")
    session_part: Any = None
    if media_type == "multipart/form-data":
        try:
            form = parse_form_data(headers["content-type"], body)
        except ValueError as exc:
            raise CallRefusal(400, f"Malformed multipart body: {exc}", "invalid_multipart") from None
        if "sdp" not in form:
            raise CallRefusal(400, "The form has no 'sdp' part.", "missing_required_parameter", "sdp")
        body = form["sdp"]
        if "session" in form:
            try:
                session_part = json.loads(form["session"])
            except ValueError:
                raise CallRefusal(400, "The 'session' part is not valid JSON.", "invalid_json", "session") from None
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CallRefusal(400, "The SDP offer is not UTF-8 text.", "invalid_offer", "sdp") from None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    model = (query.get("model") or [server.default_model])[0]
    session = _new_session(server, auth, model, session_part)
    await _answer(server, auth, offer, session, send, (scope.get("client") or (None,))[0])


def _new_session(server: CallHost, auth: AuthResult, model: str, part: Any) -> RealtimeSession:
    initial = auth.secret.session if auth.secret is not None else None
    try:
        if part is not None:
            base = initial or cfg.default_session(session_id="sess_pending", model=model, expires_at=0)
            initial = cfg.apply_update(base, part, allow_model=True)
        if initial is not None:
            model = initial.get("model") or model
        cfg.check_model(model, server.models)
        return RealtimeSession.create(
            model=model, wall_now=server.clock(), config=server.model_config, ids=IdFactory(),
            initial=initial, transport="webrtc",
        )
    except ClientError as exc:
        raise CallRefusal(400, exc.message, exc.code, exc.param) from None


async def _answer(server: CallHost, auth: AuthResult, offer: str, session: RealtimeSession,
                  send: Any, client_host: str | None) -> None:
    call_id, answer = await start_call(server, auth, offer, session, client_host)
    await respond(send, 201, answer.encode(), "application/sdp",
                  [(b"location", f"{CALLS_PATH}/{call_id}".encode())])


async def start_call(server: CallHost, auth: AuthResult, offer: str, session: Any,
                     client_host: str | None, call_id: str | None = None) -> tuple[str, str]:
    """Answer ``offer`` with a call running ``session`` (Realtime, or a started Live session);
    returns its call id and the SDP answer (raises :class:`CallRefusal`)."""
    try:
        rtc, nursery = await server.rtc.acquire()
    except WebRtcUnavailable as exc:
        raise CallRefusal(501, str(exc), "webrtc_unavailable") from None
    from standin.sessions.rtc_answer import RtcError, answer_offer, host_addresses_for_caller, new_call_id
    from standin.sessions.rtc_session import CallSession

    call_id = call_id or new_call_id()
    call = CallSession(server, call_id, session)
    try:
        answer, rtc_call = await answer_offer(
            offer, rtc_loop=rtc, call_id=call_id, on_open=call.on_open,
            on_message=call.on_message, on_audio=call.on_audio, dtx=server.rtc_dtx,
            host_addresses=host_addresses_for_caller(offer, client_host),
        )
    except RtcError as exc:
        raise CallRefusal(400, f"Cannot answer the offer: {exc}", "invalid_offer", "sdp") from None
    except trio.TooSlowError:
        raise CallRefusal(503, "The answer took too long; try again.", "answer_timeout") from None
    record = server.open_record(model=session.session["model"], call_id=call_id,
                                 auth_kind=auth.kind, subprotocol=None)
    record.transport, record.session, call.record = "webrtc", session, record
    server.calls[call_id] = call
    server.stats.calls_answered += 1
    nursery.start_soon(call.run, rtc_call, name=f"rtc-session:{call_id}")
    return call_id, answer


def parse_form_data(content_type: str, body: bytes) -> dict[str, bytes]:
    """The named parts of a ``multipart/form-data`` body (RFC 7578); ValueError if malformed."""
    match = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type, re.IGNORECASE)
    if match is None:
        raise ValueError("no boundary in the Content-Type")
    delimiter = b"--" + (match.group(1) or match.group(2)).encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("the closing boundary is missing")
    parts: dict[str, bytes] = {}
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise ValueError("a part is not delimited by CRLF")
        head, sep, content = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a part has no header/body separator")
        name = None
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                found = re.search(r'\bname="([^"]*)"|\bname=([^;\s]+)', value)
                if found:
                    name = found.group(1) if found.group(1) is not None else found.group(2)
        if name is None:
            raise ValueError("a part has no Content-Disposition name")
        parts[name] = content
    return parts
