"""Credentials for connecting: the standard key, and ephemeral client secrets minted from it.

``KeyManager.credential()`` is what a session calls before every (re)connect:

* mode ``direct``: the standard API key itself (server-to-server use);
* mode ``ephemeral``: an ``ek_`` client secret from ``POST /v1/realtime/client_secrets``,
  cached and shared by every session of the manager (one secret may start many sessions;
  a running session outlives its secret), minted again when it is within
  ``refresh_margin`` seconds of expiry, or when a caller reports it refused
  (``credential(force=True)``).  Concurrent callers share one mint (single flight), so a
  reconnect storm of a thousand sessions costs one HTTP request.

The standard key comes from the constructor or ``OPENAI_API_KEY``, or from a ``source``: a
:class:`~orchestrator.token_source.TokenCommand` whose bearer token (an Entra ID token for
Azure OpenAI) is fetched again near its expiry and when the service refused it
(``credential(force=True)`` in ``direct`` mode; a 401 from the mint in ``ephemeral`` mode).
An ``endpoint`` (:mod:`actors.endpoint`) says where the mint goes and how the standard key
is sent (Azure: ``{endpoint}/openai/realtime/client_secrets?api-version=…``, ``api-key``).
Secrets are :class:`~actors.credentials.Secret` values: never in reprs, logs, events or errors.

Mints share one HTTP client (:class:`~actors.http.SharedHttpClient`, made on the first mint,
closed by :meth:`KeyManager.aclose`; a fleet closes it when it closes): making one costs ~50 ms
of blocking CPU, a stall of every session of the process if paid at each refresh.

Errors::

    KeyError_ (base, never carries a secret)
     ├── MissingApiKey     no standard key configured
     └── KeyMintError      the mint request failed (status, server message, retryable?)
"""

from __future__ import annotations

import os
import ssl
import time
from typing import Any, Callable

import attrs
import httpx
import trio

from actors.credentials import Secret, redact
from actors.endpoint import Endpoint, OpenAIEndpoint
from actors.http import SharedHttpClient
from orchestrator.token_source import TokenCommand, TokenCommandError

__all__ = ["KeyManager", "KeyManagerError", "MissingApiKey", "KeyMintError"]


class KeyManagerError(Exception):
    """Base of the key errors.  Messages never contain a key or a secret."""


class MissingApiKey(KeyManagerError):
    pass


class KeyMintError(KeyManagerError):
    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True):
        self.status = status
        self.retryable = retryable
        super().__init__(message)


@attrs.define(repr=False)
class KeyManager:
    base_url: str
    api_key: Secret | None = None
    mode: str = "ephemeral"
    #: the ``session`` object sent with each mint (model, instructions, …)
    session: dict[str, Any] | None = None
    ttl: int = 600
    refresh_margin: float = 30.0
    clock: Callable[[], float] = time.time
    #: the caller's HTTP client for mints (theirs to close); None: ``shared_http``'s
    http: httpx.AsyncClient | None = None
    timeout: float = 10.0
    #: where the mint goes and how the standard key is sent (None: OpenAI's under base_url)
    endpoint: Endpoint | None = None
    #: fetches the standard credential (a bearer token) instead of ``api_key``
    source: TokenCommand | None = None
    #: the client mints use when ``http`` is None: made on the first mint, kept (a fleet
    #: shares it with its WebRTC offers), closed by :meth:`aclose`
    shared_http: SharedHttpClient = attrs.field(factory=SharedHttpClient)
    _current: Secret | None = attrs.field(default=None, init=False)
    _minting: trio.Event | None = attrs.field(default=None, init=False)
    _mint_error: KeyManagerError | None = attrs.field(default=None, init=False)
    mints: int = attrs.field(default=0, init=False)
    failures: int = attrs.field(default=0, init=False)
    #: mints refused with HTTP 429 (rate limited: ``rate_limited.key_mints`` in a run)
    throttled: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("direct", "ephemeral"):
            raise ValueError(f"key mode must be 'direct' or 'ephemeral', not {self.mode!r}")
        if self.api_key is None and self.source is None:
            env = os.environ.get("OPENAI_API_KEY")
            if env:
                self.api_key = Secret(env, kind="api_key")

    def __repr__(self) -> str:
        return f"KeyManager(base_url={self.base_url!r}, mode={self.mode}, key={self.api_key!r})"

    @property
    def refreshable(self) -> bool:
        """Whether asking again (``force=True``) can give a different credential."""
        return self.mode == "ephemeral" or self.source is not None

    async def standard(self, *, force: bool = False) -> Secret:
        """The standard credential: the API key, or the source's (fresh) token."""
        if self.source is not None:
            try:
                return await self.source.token(force=force)
            except TokenCommandError as exc:
                raise MissingApiKey(str(exc)) from None
        if self.api_key is None:
            raise MissingApiKey("no API key: set OPENAI_API_KEY or pass api_key")
        return self.api_key

    async def aclose(self) -> None:
        """Close the HTTP client the manager made (not a caller's ``http``). A later mint
        makes a new one; a manager never closed holds no connection between mints."""
        await self.shared_http.aclose()

    @property
    def current(self) -> Secret | None:
        return self._current

    def invalidate(self) -> None:
        """Forget the cached secret (e.g. a fault plan expired it server-side)."""
        self._current = None

    async def credential(self, *, force: bool = False) -> Secret:
        if self.mode == "direct":
            return await self.standard(force=force)
        await self.standard()  # fails early (MissingApiKey) when there is none
        current = self._current
        if not force and current is not None and not current.expired(self.clock(), self.refresh_margin):
            return current
        if self._minting is not None:
            # Another task is minting: share its result.
            event = self._minting
            await event.wait()
            if self._current is not None and self._current is not current:
                return self._current
            if self._mint_error is not None:
                raise self._mint_error
        return await self._mint()

    async def _mint(self) -> Secret:
        event = self._minting = trio.Event()
        self._mint_error = None
        try:
            secret = await self._request()
        except KeyManagerError as exc:
            self.failures += 1
            if isinstance(exc, KeyMintError) and exc.status == 429:
                self.throttled += 1
            self._mint_error = exc
            raise
        else:
            self._current = secret
            self.mints += 1
            return secret
        finally:
            self._minting = None
            event.set()

    async def _request(self) -> Secret:
        secret = await self._mint_with(await self.standard(), fresh_on_401=self.source is not None)
        if secret is None:  # the source's token was refused: mint again with a fresh one
            secret = await self._mint_with(await self.standard(force=True), fresh_on_401=False)
        assert secret is not None
        return secret

    async def _mint_with(self, standard: Secret, *, fresh_on_401: bool) -> Secret | None:
        """A client secret minted with ``standard``; None when refused with 401 and
        ``fresh_on_401`` (the caller fetches a fresh token and tries once more)."""
        body: dict[str, Any] = {"expires_after": {"anchor": "created_at", "seconds": self.ttl}}
        if self.session is not None:
            body["session"] = self.session
        endpoint = self.endpoint or OpenAIEndpoint(self.base_url)
        url = endpoint.client_secrets_url()
        headers = {**dict(endpoint.headers), **dict(endpoint.auth_headers(standard))}
        client = self.http or self.shared_http.get()
        try:
            response = await client.post(url, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            # httpx errors can carry the request (and its headers): keep only the class and text.
            message = redact(f"{type(exc).__name__}: {_reason(exc)}", standard)
            raise KeyMintError(f"client secret request failed: {message}") from None
        if response.status_code == 401 and fresh_on_401:
            return None
        if response.status_code != 200:
            detail = redact(_error_message(response), standard)
            raise KeyMintError(
                f"client secret request refused: HTTP {response.status_code}: {detail}",
                status=response.status_code,
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        try:
            data = response.json()
            value = data["value"]
            expires_at = float(data["expires_at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyMintError(f"client secret response malformed: {type(exc).__name__}") from None
        return Secret(value, expires_at=expires_at, kind="client_secret")


def _reason(exc: BaseException) -> str:
    """The most telling text in an exception's chain: a TLS error (a refused certificate is
    otherwise an empty ``ConnectError``), else the first non-empty message."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8 and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for link in chain:
        if isinstance(link, ssl.SSLError):
            return f"{type(link).__name__}: {link}"
    return next((str(link) for link in chain if str(link)), "")


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
        return str(data.get("error", {}).get("message", ""))[:200]
    except (ValueError, AttributeError):
        return response.text[:200]


async def refresh_ahead(keys: KeyManager, *, retry_after: float = 5.0) -> None:
    """Keep the shared client secret fresh in the background, so reconnects never wait on a mint.

    Sleeps (trio clock) until ``refresh_margin`` before the current secret's expiry, then
    mints; on failure retries after ``retry_after``.  Runs until cancelled.
    """
    if keys.mode != "ephemeral":
        return
    while True:
        current = keys.current
        if current is not None and current.expires_at is not None:
            wait = current.expires_at - keys.refresh_margin - keys.clock()
            if wait > 0:
                await trio.sleep(wait)
                if keys.current is not current:
                    continue
        try:
            await keys.credential(force=keys.current is current and current is not None)
        except KeyManagerError:
            await trio.sleep(retry_after)
