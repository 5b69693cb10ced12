"""The browser demo: ``GET /demo`` (the page, ``demo_page.py``) and ``POST /v1/demo/session``.

Both exist only when the server has a ``demo_token`` (``EmbeddedServer(demo_token=…)``);
otherwise they answer ``404`` like any unknown path.

``POST /v1/demo/session`` is the page's key-vending endpoint: it mints an ``ek_`` client
secret exactly like ``POST /v1/realtime/client_secrets`` (same body, same answer), but instead
of the standard API key (which must never reach a browser) it requires the caller token in the
header ``X-Rtfleet-Demo-Token`` (``401`` ``invalid_demo_token`` without it or when it differs;
compared in constant time). So the endpoint cannot be used anonymously, and the page never
holds more than a short-lived secret.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from standin.keys.client_secrets import mint_from_body
from standin.demo.page import CONTENT_SECURITY_POLICY, PAGE
from standin.front.responses import error_body, respond, respond_json

if TYPE_CHECKING:
    from standin.host import DemoHost

__all__ = ["DEMO_PAGE_PATH", "DEMO_PATHS", "DEMO_SESSION_PATH", "TOKEN_HEADER", "handle_demo"]

DEMO_PAGE_PATH = "/demo"
DEMO_SESSION_PATH = "/v1/demo/session"
DEMO_PATHS = frozenset({DEMO_PAGE_PATH, DEMO_SESSION_PATH})
TOKEN_HEADER = "x-rtfleet-demo-token"

_PAGE_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


async def handle_demo(server: DemoHost, scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"].rstrip("/")
    if server.demo_token is None:
        await respond_json(send, 404, error_body(f"Unknown path {scope['path']}", "not_found"))
        return
    method = "GET" if path == DEMO_PAGE_PATH else "POST"
    if scope["method"] != method:
        await respond_json(send, 405, error_body(f"Use {method}", "method_not_allowed"),
                           [(b"allow", method.encode())])
        return
    if path == DEMO_PAGE_PATH:
        await respond(send, 200, PAGE, "text/html; charset=utf-8", _PAGE_HEADERS)
        return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    given = headers.get(TOKEN_HEADER, "").strip()
    if not given or not hmac.compare_digest(given.encode(), server.demo_token.encode()):
        message = f"Missing or wrong demo token: send it in the {TOKEN_HEADER} header."
        await respond_json(send, 401, error_body(message, "invalid_demo_token"))
        return
    minted = await mint_from_body(server, receive, send)
    if minted is not None:
        server.stats.demo_secrets_minted += 1
        await respond_json(send, 200, minted)
