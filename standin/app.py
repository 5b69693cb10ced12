"""The embedded server as a raw ASGI application (no web framework).

Routes:

* ``lifespan``: startup/shutdown acknowledged.
* ``POST /v1/realtime/client_secrets``: mint an ``ek_`` secret (Bearer standard key required;
  ``401`` ``invalid_api_key`` otherwise; ``400`` for a bad body; ``429`` ``rate_limit_exceeded``
  over the fault plan's ``mints_per_minute``; see ``client_secrets.py``).
* ``POST /v1/live/sessions`` (GPT-Live over WebRTC: ``live_rtc.py``).
* ``POST /v1/realtime/calls`` (WebRTC offer -> answer) and
  ``POST /v1/realtime/calls/{call_id}/hangup``: see ``calls.py``.
* ``GET /demo`` and ``POST /v1/demo/session``: the browser demo, when the server has a
  ``demo_token`` (``404`` otherwise); see ``demo.py``.
* ``GET|POST /_rtfleet/faults``: inject a fault now (API key; ``control.py``).
* WebSocket ``/v1/realtime``: see ``sessions/websocket.py``; ``/v1/live/sessions`` (GPT-Live):
  see ``sessions/live_ws.py``.
* Azure OpenAI's shapes of the realtime paths (``/openai/realtime?api-version=…&deployment=…``,
  ``/openai/realtime/{client_secrets,calls}``, ``/openai/v1/realtime…``, header ``api-key``) are
  rewritten to the above first: ``front/azure.py``.
* ``required_headers`` (a server option: a generic target's headers must arrive): a request
  without them gets ``401`` ``missing_required_header`` (a WebSocket upgrade too, as HTTP).
* Anything else: ``404`` (``405`` for a known path with another method), WebSocket ``403``.

HTTP errors use the OpenAI JSON shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import trio

from standin.sessions.sip_control import handle_call_control, is_call_control_path  # SIP call control
from standin.sessions.rtc_route import handle_calls, is_calls_path
from standin.keys.client_secrets import mint_from_body
from standin.control import CONTROL_FAULTS_PATH, handle_fault_control
from standin.demo.routes import DEMO_PATHS, handle_demo
from standin.front.azure import AzureRefusal, azure_scope, is_azure_path
from standin.front.responses import error_body, respond_json
from standin.sessions.live_rtc import handle_live_create
from standin.sessions.live_ws import LIVE_PATH, attach_id, handle_live_websocket
from standin.sessions.websocket import handle_websocket

if TYPE_CHECKING:
    from standin.host import AppHost

__all__ = ["RealtimeApp"]

CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"
REALTIME_PATH = "/v1/realtime"


class RealtimeApp:
    def __init__(self, server: AppHost) -> None:
        self.server = server

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket"):
            refusal = _admission(self.server, scope)
            if isinstance(refusal, tuple):
                if kind == "websocket":
                    await receive()  # websocket.connect
                    await _deny_websocket(scope, send, *refusal)
                else:
                    await respond_json(send, *refusal)
                return
            scope = refusal
        if kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            path = scope["path"].rstrip("/")
            if path == REALTIME_PATH:
                await handle_websocket(self.server, scope, receive, send)
            elif path == LIVE_PATH or attach_id(path) is not None:
                await handle_live_websocket(self.server, scope, receive, send)
            else:
                await _unknown_websocket_path(scope, receive, send)

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.server.stats.http_requests += 1
        path = scope["path"].rstrip("/")
        # -- SIP call control (call_control.py): accept/reject/refer, hangup of SIP calls --
        if is_call_control_path(self.server, path):
            await handle_call_control(self.server, scope, receive, send)
            return
        # -- end SIP call control --
        if path == LIVE_PATH:  # GPT-Live over WebRTC: POST the offer, the session starts
            await handle_live_create(self.server, scope, receive, send)
            return
        if is_calls_path(path):
            await handle_calls(self.server, scope, receive, send)
            return
        if path == CONTROL_FAULTS_PATH:  # rtfleet's own control path (control.py)
            await handle_fault_control(self.server, scope, receive, send)
            return
        if path in DEMO_PATHS:
            await handle_demo(self.server, scope, receive, send)
            return
        if path != CLIENT_SECRETS_PATH:
            await respond_json(send, 404, error_body(f"Unknown path {scope['path']}", "not_found"))
            return
        if scope["method"] != "POST":
            await respond_json(send, 405, error_body("Use POST", "method_not_allowed"), [(b"allow", b"POST")])
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth_header = headers.get("authorization", "")
        token = auth_header[7:].strip() if auth_header[:7].lower() == "bearer " else None
        auth = self.server.authenticate(token, allow_secret=False)
        if auth.kind is None:
            await respond_json(send, 401, error_body(auth.reason, "invalid_api_key"))
            return
        limiter, now = self.server.limiter, trio.current_time()
        if not limiter.admit_mint(self.server.faults, now):
            retry = f"{max(1, round(limiter.mint_reset(now)))}".encode()
            await respond_json(send, 429, error_body(
                "Rate limit reached for client secrets per min. Please try again later.",
                "rate_limit_exceeded", type="requests"), [(b"retry-after", retry)])
            return
        minted = await mint_from_body(self.server, receive, send)
        if minted is not None:
            self.server.stats.client_secrets_minted += 1
            await respond_json(send, 200, minted)


def _admission(server: Any, scope: dict[str, Any]) -> dict[str, Any] | tuple[int, dict[str, Any]]:
    """The scope to serve (Azure shapes rewritten), or ``(status, error body)`` to refuse."""
    required = getattr(server, "required_headers", None)
    if required:
        sent = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        for name, value in required.items():
            if sent.get(name.lower()) != value:
                message = f"Missing or wrong required header: {name}."  # never the value
                return 401, error_body(message, "missing_required_header", param=name)
    if is_azure_path(scope["path"].rstrip("/")):
        try:
            return azure_scope(scope)
        except AzureRefusal as refusal:
            return 400, error_body(refusal.message, "missing_required_parameter", param=refusal.param)
    return scope


async def _unknown_websocket_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A WebSocket upgrade on a path the service does not have: a JSON 404 that says which path
    is (servers without the ASGI denial-response extension answer a bare 403)."""
    await receive()  # websocket.connect
    path = scope["path"]
    hint = (f"Unknown WebSocket path {path}: the realtime endpoint is {REALTIME_PATH}?model=... "
            "(an SDK's base_url ends in /v1, e.g. http://127.0.0.1:8765/v1)")
    await _deny_websocket(scope, send, 404, error_body(hint, "not_found"))


async def _deny_websocket(scope: dict[str, Any], send: Any, status: int, body: dict[str, Any]) -> None:
    """Answer an upgrade with an HTTP error (servers without the ASGI denial-response
    extension answer a bare 403)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
        return
    await send({"type": "websocket.http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "websocket.http.response.body", "body": json.dumps(body).encode()})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
