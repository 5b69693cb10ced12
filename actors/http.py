"""One HTTP client kept for an owner's short requests (key mints, SDP offers, call accepts,
webhooks) instead of one ``httpx.AsyncClient`` per request.

Making an ``httpx.AsyncClient`` loads the CA bundle into a new SSL context: ~50 ms of CPU on
this kind of box (~230 ms the first time in a process), all of it blocking the event loop and
so every session of the process. :class:`SharedHttpClient` makes one on first use and keeps it
until its owner (a fleet, a SIP controller, the stand-in's SIP server) calls :meth:`aclose`.

The client keeps **no idle connection** (``max_keepalive_connections=0``): each request's
connection is closed when its response has been read, or when the request is cancelled
(httpcore closes it, shielded). So an owner that never reaches ``aclose`` (a fleet abandoned
without closing) leaves no socket behind, and a request cancelled midway leaves the client
usable. The requests kept here are seconds or minutes apart, longer than servers keep an idle
connection open, so keep-alive would seldom be used. ``max_connections`` is unbounded, as it
was with a client per request: a reconnect storm of WebRTC offers is not queued behind a pool
limit.
"""

from __future__ import annotations

import attrs
import httpx

__all__ = ["SharedHttpClient", "new_client"]


def new_client() -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for short requests: no idle connections kept, no pool limit.
    Each request passes its own timeout."""
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=0))


@attrs.define(eq=False, repr=False)
class SharedHttpClient:
    """An ``httpx.AsyncClient`` made on first :meth:`get` and kept until :meth:`aclose`
    (a later :meth:`get` makes a new one)."""

    _client: httpx.AsyncClient | None = attrs.field(default=None, init=False)

    def get(self) -> httpx.AsyncClient:
        client = self._client
        if client is None or client.is_closed:
            client = self._client = new_client()
        return client

    @property
    def client(self) -> httpx.AsyncClient | None:
        """The client made so far (None before the first request and after :meth:`aclose`)."""
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def __repr__(self) -> str:
        state = "none" if self._client is None else "closed" if self._client.is_closed else "open"
        return f"SharedHttpClient({state})"
