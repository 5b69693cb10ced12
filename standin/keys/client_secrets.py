"""Ephemeral client secrets (``ek_…``) of the embedded server: mint, look up, expire.

``POST /v1/realtime/client_secrets`` takes ``{expires_after?: {anchor: "created_at", seconds:
10..7200 (default 600)}, session?: {type: "realtime" | "transcription", …}}`` and answers ``{value, expires_at,
session}``. Times are wall-clock seconds passed in by the caller (the server's injectable clock).
Expiry only gates *starting* a session: a running session outlives its secret (PROTOCOL.md).
Secret values never appear in logs, reprs or error messages.
"""

from __future__ import annotations

import copy
import heapq
import json
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from standin.model import config as cfg
from standin.model import transcription
from standin.model.events import ClientError, IdFactory, new_secret_value
from standin.front.responses import error_body, read_body, respond_json


__all__ = ["ClientSecret", "ClientSecretStore", "SecretHost", "DEFAULT_TTL_S", "MAX_TTL_S", "MIN_TTL_S", "mint_from_body"]

DEFAULT_TTL_S = 600
MIN_TTL_S = 10
MAX_TTL_S = 7200


@attrs.frozen
class ClientSecret:
    value: str = attrs.field(repr=False)
    expires_at: int
    session: dict[str, Any]  # the session config a connection made with this secret starts from


@attrs.define
class ClientSecretStore:
    ids: IdFactory = attrs.field(factory=IdFactory)
    _by_value: dict[str, ClientSecret] = attrs.field(factory=dict, repr=False)
    _expiry: list[tuple[int, str]] = attrs.field(factory=list, repr=False)

    def __len__(self) -> int:
        return len(self._by_value)

    def mint(self, body: Any, *, now: float, default_model: str,
             models: frozenset[str] | None = None) -> dict[str, Any]:
        """Create a secret from a request body; raises ClientError for a bad body."""
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ClientError("invalid_type", "The body must be a JSON object.")
        for key in body:
            if key not in ("expires_after", "session"):
                raise ClientError("unknown_parameter", f"Unknown parameter: '{key}'.", key)
        ttl = _ttl(body.get("expires_after"))
        self._prune(now)
        expires_at = int(now) + ttl
        requested = body.get("session")
        model = default_model
        if isinstance(requested, dict) and isinstance(requested.get("model"), str):
            model = requested["model"]
        if isinstance(requested, dict) and requested.get("type") == "transcription":
            session = transcription.default_session(session_id=self.ids.new("sess"), expires_at=expires_at)
            session = transcription.apply_update(session, requested)
        else:
            cfg.check_model(model, models)
            session = cfg.default_session(session_id=self.ids.new("sess"), model=model, expires_at=expires_at)
            if requested is not None:
                session = cfg.apply_update(session, requested, allow_model=True)
        secret = ClientSecret(new_secret_value(), expires_at, session)
        self._by_value[secret.value] = secret
        heapq.heappush(self._expiry, (expires_at, secret.value))
        return {"value": secret.value, "expires_at": expires_at, "session": copy.deepcopy(session)}

    def lookup(self, value: str, *, now: float) -> tuple[ClientSecret | None, str]:
        """``(secret, "")`` when valid, else ``(None, "unknown" | "expired")``."""
        secret = self._by_value.get(value)
        if secret is None:
            return None, "unknown"
        if now >= secret.expires_at:
            return None, "expired"
        return secret, ""

    def expire_all(self, now: float) -> int:
        """Fault injection: every live secret expires now; returns how many did."""
        count = 0
        for value, secret in list(self._by_value.items()):
            if secret.expires_at > now:
                self._by_value[value] = attrs.evolve(secret, expires_at=int(now))
                count += 1
        return count

    def _prune(self, now: float) -> None:
        # Forget secrets expired for over an hour (recently expired ones still say "expired").
        while self._expiry and self._expiry[0][0] + 3600 <= now:
            _, value = heapq.heappop(self._expiry)
            self._by_value.pop(value, None)


def _ttl(expires_after: Any) -> int:
    if expires_after is None:
        return DEFAULT_TTL_S
    if not isinstance(expires_after, dict):
        raise ClientError("invalid_type", "expires_after must be an object", "expires_after")
    anchor = expires_after.get("anchor", "created_at")
    if anchor != "created_at":
        raise ClientError(
            "invalid_value", "expires_after.anchor must be 'created_at'", "expires_after.anchor"
        )
    seconds = expires_after.get("seconds", DEFAULT_TTL_S)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not MIN_TTL_S <= seconds <= MAX_TTL_S:
        raise ClientError(
            "invalid_value",
            f"expires_after.seconds must be an integer {MIN_TTL_S}..{MAX_TTL_S}",
            "expires_after.seconds",
        )
    return seconds


class SecretHost(Protocol):
    """What minting a secret needs of the server: its wall clock, default model and store."""

    clock: Callable[[], float]
    default_model: str
    #: the models sessions may use (None: any)
    models: frozenset[str] | None
    secrets: ClientSecretStore


async def mint_from_body(server: SecretHost, receive: Any, send: Any) -> dict[str, Any] | None:
    """Mint a client secret from a client_secrets request body; None after answering an error."""
    body = await read_body(receive)
    if body is None:
        await respond_json(send, 413, error_body("Request body too large", "request_too_large"))
        return None
    try:
        parsed = json.loads(body) if body.strip() else None
    except ValueError:
        await respond_json(send, 400, error_body("The body is not valid JSON.", "invalid_json"))
        return None
    try:
        return server.secrets.mint(parsed, now=server.clock(), default_model=server.default_model,
                                   models=server.models)
    except ClientError as exc:
        await respond_json(send, 400, error_body(exc.message, exc.code, param=exc.param))
        return None
