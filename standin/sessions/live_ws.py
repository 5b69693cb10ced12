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
from typing import TYPE_CHECKING, Any

from standin.model.events import IdFactory
from standin.model.live import LIVE_MODELS, LiveSession
from standin.sessions.websocket import AUTH_FAILURE_CLOSE, _Connection, _credential

if TYPE_CHECKING:
    from standin.host import SessionHost

__all__ = ["LIVE_PATH", "handle_live_websocket"]

LIVE_PATH = "/v1/live/sessions"


async def handle_live_websocket(server: SessionHost, scope: dict[str, Any], receive: Any, send: Any) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    offered = [str(p) for p in scope.get("subprotocols") or []]
    auth = server.authenticate(_credential(headers, offered))
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
