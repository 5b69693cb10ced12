"""The embedded server as a raw ASGI application (no web framework).

Routes:

* ``lifespan``: startup/shutdown acknowledged.
* ``POST /v1/realtime/client_secrets``: mint an ``ek_`` secret (Bearer standard key required;
  ``401`` ``invalid_api_key`` otherwise; ``400`` for a bad body; see ``client_secrets.py``).
* WebSocket ``/v1/realtime``: see ``ws.py``.
* Anything else: ``404`` (``405`` for a known path with another method), WebSocket ``403``.

HTTP errors use the OpenAI JSON shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .events import ClientError
from .ws import handle_websocket

if TYPE_CHECKING:
    from .server import EmbeddedServer

__all__ = ["RealtimeApp"]

MAX_BODY = 1 << 20
CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"
REALTIME_PATH = "/v1/realtime"


class RealtimeApp:
    def __init__(self, server: EmbeddedServer) -> None:
        self.server = server

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            if scope["path"].rstrip("/") == REALTIME_PATH:
                await handle_websocket(self.server, scope, receive, send)
            else:
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.server.stats.http_requests += 1
        path = scope["path"].rstrip("/")
        if path != CLIENT_SECRETS_PATH:
            await _json(send, 404, _error(f"Unknown path {scope['path']}", "not_found"))
            return
        if scope["method"] != "POST":
            await _json(send, 405, _error("Use POST", "method_not_allowed"), [(b"allow", b"POST")])
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth_header = headers.get("authorization", "")
        token = auth_header[7:].strip() if auth_header[:7].lower() == "bearer " else None
        auth = self.server.authenticate(token, allow_secret=False)
        if auth.kind is None:
            await _json(send, 401, _error(auth.reason, "invalid_api_key"))
            return
        body = await _read_body(receive)
        if body is None:
            await _json(send, 413, _error("Request body too large", "request_too_large"))
            return
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError:
            await _json(send, 400, _error("The body is not valid JSON.", "invalid_json"))
            return
        try:
            minted = self.server.secrets.mint(
                parsed, now=self.server.clock(), default_model=self.server.default_model
            )
        except ClientError as exc:
            await _json(send, 400, _error(exc.message, exc.code, param=exc.param))
            return
        self.server.stats.client_secrets_minted += 1
        await _json(send, 200, minted)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Any) -> bytes | None:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _error(message: str, code: str, *, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


async def _json(send: Any, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
