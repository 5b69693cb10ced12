"""Credentials handed to actors: a value that never shows itself.

``Secret`` keeps an API key or an ``ek_`` client secret.  Its ``repr``/``str`` show only a
kind and a short fingerprint, so a secret that ends up in a log line, an exception or an
event payload by accident reveals nothing.  ``reveal()`` is the one way to read it, used
only where the value goes on the wire (an ``Authorization`` header).
"""

from __future__ import annotations

import hashlib

import attrs

__all__ = ["Secret", "redact"]


@attrs.frozen(repr=False)
class Secret:
    _value: str = attrs.field(alias="value")
    #: unix seconds after which the secret may no longer start a session (None: no expiry)
    expires_at: float | None = None
    #: "api_key" (a standard key) or "client_secret" (an ephemeral ek_ key)
    kind: str = "api_key"
    #: the fingerprint, computed once (a fleet reads its key's with every rate-limit update)
    _fingerprint: str = attrs.field(init=False, eq=False)

    @_fingerprint.default
    def _hash(self) -> str:
        return hashlib.sha256(self._value.encode()).hexdigest()[:8]

    def reveal(self) -> str:
        return self._value

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def expired(self, now: float, margin: float = 0.0) -> bool:
        return self.expires_at is not None and now >= self.expires_at - margin

    def __repr__(self) -> str:
        return f"Secret(kind={self.kind}, fp={self.fingerprint}, expires_at={self.expires_at})"

    __str__ = __repr__


def redact(text: str, *secrets: Secret | str | None) -> str:
    """Replace any of the given secret values found in ``text`` with ``[redacted]``."""
    for s in secrets:
        if s is None:
            continue
        value = s.reveal() if isinstance(s, Secret) else s
        if value:
            text = text.replace(value, "[redacted]")
    return text
