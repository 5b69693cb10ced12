"""CORS for the browser-facing paths, as the hosted service answers browsers.

A page on another origin (a dev server on its own port, as every realtime browser guide has it)
posts its SDP offer, or mints a secret, straight to the service with ``Authorization: Bearer``
and a non-simple ``Content-Type`` (``application/sdp``, ``application/json``): the browser first
sends a preflight ``OPTIONS`` and gives up ("Failed to fetch") unless it is answered.

:class:`CorsPolicy` wraps the raw ASGI app (``server.py`` does it, so no route knows about CORS):

* **paths**: ``/v1/realtime/…`` HTTP paths (``client_secrets``, ``calls``, call control) and
  ``/v1/live/…``; nothing else (``/demo`` and its key-vending endpoint stay same-origin, the
  ``/_rtfleet/…`` control paths get no CORS).
* **origins**: ``("*",)`` by default, as the hosted service answers (``Access-Control-Allow-Origin:
  *``: the key, not the origin, is the credential; no cookies are used, so no
  ``Allow-Credentials``); or a list of exact origins (``scheme://host[:port]``): a listed
  origin is echoed back with ``Vary: Origin``, another gets no CORS headers (the browser refuses).
* **preflight** (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``): ``204`` with
  ``Allow-Methods: GET, POST, DELETE, OPTIONS``, ``Allow-Headers`` = the requested headers that
  are allowed (``authorization``, ``content-type``, the official SDKs' ``openai-*`` and
  ``x-stainless-*`` headers, ``idempotency-key``), ``Max-Age: 600``. A requested header outside
  that list is left out, so the browser refuses the request, as the hosted service refuses,
  e.g., an ``originator`` header. A preflight from an origin not allowed gets ``403``.
  ``OPTIONS`` without ``Origin`` (not a browser) gets ``204`` with ``Allow``.
* **actual responses** from an allowed origin carry ``Access-Control-Allow-Origin`` and
  ``Access-Control-Expose-Headers: Location, X-Request-Id`` (the call id is in ``Location``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Awaitable, Callable

__all__ = ["CORS_PATH_PREFIXES", "CorsPolicy", "check_origin"]

#: HTTP path prefixes the hosted service answers browsers on
CORS_PATH_PREFIXES = ("/v1/realtime", "/v1/live")
_ALLOWED_HEADERS = frozenset({"authorization", "content-type", "idempotency-key", "openai-beta",
                              "openai-organization", "openai-project"})
_ALLOWED_PREFIXES = ("x-stainless-",)
_METHODS = b"GET, POST, DELETE, OPTIONS"
_EXPOSE = b"Location, X-Request-Id"
_ORIGIN = re.compile(r"^(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def check_origin(origin: str) -> str:
    """``origin`` as given when it is ``*`` or ``scheme://host[:port]``; else ``ValueError``."""
    if origin == "*" or _ORIGIN.match(origin):
        return origin
    raise ValueError(f"{origin!r} is not an origin: give '*' or scheme://host[:port] "
                     "(e.g. http://localhost:5173), without a path or a trailing slash")


class CorsPolicy:
    """ASGI middleware: CORS on :data:`CORS_PATH_PREFIXES`; everything else passes through."""

    def __init__(self, app: App, origins: Sequence[str] = ("*",)) -> None:
        self.app = app
        self.origins = tuple(check_origin(o) for o in origins)
        self.any_origin = "*" in self.origins

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.origins or not _browser_facing(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        origin = headers.get("origin")
        if scope["method"] == "OPTIONS":
            await self._preflight(origin, headers, send)
            return
        allowed = self._allow_origin(origin)
        if allowed is None:
            await self.app(scope, receive, send)
            return
        extra = [(b"access-control-allow-origin", allowed), (b"access-control-expose-headers", _EXPOSE)]
        if not self.any_origin:
            extra.append((b"vary", b"Origin"))

        async def send_with_cors(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*(message.get("headers") or []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _allow_origin(self, origin: str | None) -> bytes | None:
        if origin is None:
            return None
        if self.any_origin:
            return b"*"
        return origin.encode("latin-1") if origin in self.origins else None

    async def _preflight(self, origin: str | None, headers: dict[str, str], send: Any) -> None:
        if origin is None or "access-control-request-method" not in headers:
            await _answer(send, 204, [(b"allow", b"GET, POST, OPTIONS")])
            return
        allowed = self._allow_origin(origin)
        if allowed is None:
            shown = ", ".join(self.origins)
            body = (f"origin {origin} is not allowed here (allowed: {shown}; "
                    "rtfleet serve --cors-origin)").encode()
            await _answer(send, 403, [(b"content-type", b"text/plain")], body)
            return
        requested = _allowed_request_headers(headers.get("access-control-request-headers", ""))
        answer = [(b"access-control-allow-origin", allowed),
                  (b"access-control-allow-methods", _METHODS),
                  (b"access-control-allow-headers", ", ".join(requested).encode()),
                  (b"access-control-max-age", b"600")]
        if not self.any_origin:
            answer.append((b"vary", b"Origin"))
        await _answer(send, 204, answer)


def _browser_facing(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in CORS_PATH_PREFIXES)


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _allowed_request_headers(value: str) -> list[str]:
    """The requested header names that are allowed (always at least the two every call needs)."""
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    allowed = [n for n in names if _TOKEN.match(n) and
               (n in _ALLOWED_HEADERS or n.startswith(_ALLOWED_PREFIXES))]
    return allowed or ["authorization", "content-type"]


async def _answer(send: Any, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes = b"") -> None:
    length = [] if status == 204 else [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *length]})
    await send({"type": "http.response.body", "body": body})
