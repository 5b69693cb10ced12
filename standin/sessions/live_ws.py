"""The Live WebSocket route of the embedded server: ``/v1/live/sessions`` (I/O shell).

As the hosted service: no query string; ``Authorization: Bearer <key>`` (a standard key or an
unexpired ``ek_`` secret); the client's first message is ``session.start`` (model inside), the
server answers ``session.started``. A refused key is a Live ``error`` (``invalid_api_key``)
after the handshake, then close 4001, as on ``/v1/realtime``. The connection is the same shell
as Realtime's (:mod:`standin.sessions.websocket`: reader, paced model timer, fault timer, one
sender applying latency, malformed frames and drops); only the model differs
(:class:`~standin.model.live.LiveSession`), and expiry is ``session.closed`` ``expired``.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from standin.model.events import IdFactory
from standin.model.live import LIVE_MODELS, LiveSession
from standin.sessions.rtc_session import run_sideband
from standin.sessions.websocket import AUTH_FAILURE_CLOSE, _Connection, _credential

if TYPE_CHECKING:
    from standin.host import SessionHost

__all__ = ["LIVE_PATH", "attach_id", "handle_live_websocket"]

LIVE_PATH = "/v1/live/sessions"
_ATTACH = re.compile(r"^/v1/live/sessions/([^/]+)/attach$")


def attach_id(path: str) -> str | None:
    """The session id of a sideband path ``/v1/live/sessions/{id}/attach``, else None."""
    match = _ATTACH.match(path)
    return match.group(1) if match else None


async def handle_live_websocket(server: SessionHost, scope: dict[str, Any], receive: Any, send: Any) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    offered = [str(p) for p in scope.get("subprotocols") or []]
    auth = server.authenticate(_credential(headers, offered))
    live_id = attach_id(scope["path"].rstrip("/"))
    if live_id is not None:
        await _attach(server, live_id, auth, receive, send)
        return
    record = server.open_record(model=None, call_id=None, auth_kind=auth.kind, subprotocol=None)
    ids = IdFactory()
    try:
        await send({"type": "websocket.accept"})
        models = None if server.models is None else server.models | LIVE_MODELS
        session = LiveSession(server.model_config, ids, server.clock(), models=models)
        if auth.kind is None:
            error = {"type": "invalid_request_error", "code": "invalid_api_key", "message": auth.reason}
            event = {"type": "error", "event_id": ids.new("event"), "error": error}
            await send({"type": "websocket.send", "text": json.dumps(event)})
            server.stats.errors_sent += 1
            record.close_code, record.closed_by = AUTH_FAILURE_CLOSE, "server"
            await send({"type": "websocket.close", "code": AUTH_FAILURE_CLOSE, "reason": "invalid_api_key"})
            return
        record.model, record.session, record.transport = "live", session, "websocket"
        await _Connection(server, record, session, scope, receive, send).run()
    finally:
        server.close_record(record)
        server.stats.connections_closed += 1


async def _attach(server: SessionHost, live_id: str, auth: Any, receive: Any, send: Any) -> None:
    """A sideband on a SIP call accepted on the Live surface: the call's Live events (its
    ``session.started`` first) and its commands, as for a Realtime ``?call_id=`` sideband."""
    record = server.open_record(model="live", call_id=live_id, auth_kind=auth.kind, subprotocol=None)
    try:
        await send({"type": "websocket.accept"})
        sip = getattr(server, "sip", None)
        call_id = None
        if sip is not None and live_id in sip.calls_by_live_id:
            call_id = sip.calls_by_live_id[live_id].call_id
        call = server.calls.get(call_id or live_id)  # a SIP call, or a Live WebRTC call
        refusal = None
        if auth.kind is None:
            refusal = ("invalid_api_key", auth.reason, AUTH_FAILURE_CLOSE)
        elif call is None or not call.live or not hasattr(call.session, "expired"):
            refusal = ("session_not_found", f"No live Live session with id '{live_id}'.", 1008)
        if refusal is not None:
            code, message, close = refusal
            event = {"type": "error", "event_id": IdFactory().new("event"),
                     "error": {"type": "invalid_request_error", "code": code, "message": message}}
            await send({"type": "websocket.send", "text": json.dumps(event)})
            record.close_code, record.closed_by = close, "server"
            await send({"type": "websocket.close", "code": close, "reason": code})
            return
        record.transport, record.session = "sideband", call.session
        await run_sideband(call, record, receive, send)
    finally:
        server.close_record(record)
        server.stats.connections_closed += 1
