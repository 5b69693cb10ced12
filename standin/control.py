"""The server's own control path: ``/_rtfleet/faults``, to chaos-test an app against the server.

``POST /_rtfleet/faults`` with one fault action as JSON (``{"action": "drop_connections",
"percent": 50}``; the vocabulary of scenario faults) applies it now; ``GET`` shows the live
fault plan and what was injected so far. Both need the server's **standard API key**
(``Authorization: Bearer sk-…``), compared directly: a client secret is refused, and a
``reject_keys`` fault does not lock the controller out.

The server only routes: the action is parsed and applied by the hook ``server.fault_control``
(set by ``rtfleet serve``, ``orchestrator/serve_faults.py``), which returns the answer and,
optionally, something to run once the answer is sent (``kill_server`` stops this very server).
Without a hook the path answers ``404``.

=======  =====================================================================================
status   when
=======  =====================================================================================
200      applied: ``{"applied": "drop_connections(percent=50.0)", "dropped": 3}``, or the GET
400      ``invalid_json`` / ``invalid_fault`` (the message says which field and why)
401      ``invalid_api_key``;  405 another method;  413 a body over 1 MiB
=======  =====================================================================================
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

import attrs

from standin.front.responses import error_body, read_body, respond_json

if TYPE_CHECKING:
    from standin.host import ControlHost

__all__ = ["CONTROL_FAULTS_PATH", "handle_fault_control"]

CONTROL_FAULTS_PATH = "/_rtfleet/faults"


def _bearer(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            text = value.decode("latin-1")
            return text[7:].strip() if text[:7].lower() == "bearer " else ""
    return ""


async def handle_fault_control(server: ControlHost, scope: dict[str, Any], receive: Any, send: Any) -> None:
    hook = server.fault_control
    if hook is None:
        await respond_json(send, 404, error_body(f"Unknown path {scope['path']}", "not_found"))
        return
    if scope["method"] not in ("GET", "POST"):
        await respond_json(send, 405, error_body("Use POST (or GET)", "method_not_allowed"),
                           [(b"allow", b"GET, POST")])
        return
    token = _bearer(scope).encode()
    if not any(hmac.compare_digest(token, key.encode()) for key in server.api_keys):
        await respond_json(send, 401, error_body("The control path needs the server's API key.",
                                                 "invalid_api_key"))
        return
    if scope["method"] == "GET":
        faults = server.stats.faults
        await respond_json(send, 200, {"plan": attrs.asdict(server.faults),
                                       "injected": json.loads(json.dumps(attrs.asdict(faults)))})
        return
    body = await read_body(receive)
    if body is None:
        await respond_json(send, 413, error_body("Request body too large", "request_too_large"))
        return
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        await respond_json(send, 400, error_body("The body is not valid JSON.", "invalid_json"))
        return
    try:
        answer, later = await hook(parsed)
    except ValueError as exc:
        await respond_json(send, 400, error_body(str(exc), "invalid_fault"))
        return
    await respond_json(send, 200, answer)
    if later is not None:
        await later()
