"""Errors of the realtime protocol core, and the rules for what they may contain.

The exception tree (every error the sans-I/O realtime core raises or returns)::

    Exception
     └── ProtocolError              code, message, detail, local
          ├── QueueFull             code "queue_full", local=True: a bounded outbound queue
          │                         refused a control event; nothing was enqueued, retry later
          └── SessionConfigError    code "invalid_session_config", local=True; also a
                                    ValueError, so config loaders can catch either

``local`` says whose fault it is, as in h11: ``True`` means *we* produced bad input (a client
event or a config that fails validation: fix the caller); ``False`` means the *peer* sent bad
input (a frame the server should not have sent: report it and carry on).  Peer errors are
returned as values by :meth:`ClientCore.receive <actors.proto.client.ClientCore.receive>`,
never raised, so one bad frame cannot end a session.

Codes:

=====================  ======  =====================================================
code                   local   meaning
=====================  ======  =====================================================
malformed_json         False   the frame is not JSON
not_an_object          False   the JSON is not an object
missing_type           False   no string ``type``
unknown_event_type     False   ``type`` is not a known server event
invalid_field          False   a required field is missing or has the wrong JSON type
binary_frame           False   a binary frame where only text frames are allowed
oversized_frame        False   a frame larger than the configured maximum
invalid_client_event   True    a client event we were asked to send fails validation
invalid_session_config True    a session configuration fails validation
queue_full             True    the outbound control queue is full
=====================  ======  =====================================================

Secrets never reach an error: messages never echo headers or keys, and any echoed input goes
through :func:`excerpt`, which redacts anything shaped like a key or bearer token and
truncates to about 200 characters.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "ProtocolError",
    "QueueFull",
    "SessionConfigError",
    "excerpt",
    "EXCERPT_LIMIT",
]

#: Longest piece of peer or caller input an error may echo.
EXCERPT_LIMIT = 200

# Things shaped like credentials: OpenAI keys (sk-…), ephemeral client secrets (ek_…),
# webhook secrets (whsec_…), bearer tokens and the browser key subprotocol.
_SECRET = re.compile(
    r"(?i)(?:bearer\s+\S+"
    r"|\bsk-[A-Za-z0-9_\-]{6,}"
    r"|\bek_[A-Za-z0-9_\-]{6,}"
    r"|\bwhsec_[A-Za-z0-9+/=_\-]{6,}"
    r"|openai-insecure-api-key\.\S+)"
)


def excerpt(text: str | bytes | bytearray, limit: int = EXCERPT_LIMIT) -> str:
    """A short, secret-free rendering of ``text`` for error messages and details.

    Only the first ``4 * limit`` characters are looked at (a 16 MiB frame is not scanned),
    credentials are replaced with ``[redacted]`` and the result is cut to ``limit``
    characters, ending in ``…`` when cut.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text[: 4 * limit]).decode("utf-8", "replace")
    else:
        text = text[: 4 * limit]
    text = _SECRET.sub("[redacted]", text)
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def _rebuild(cls: type, code: str, message: str, detail: Any, local: bool) -> ProtocolError:
    error = Exception.__new__(cls)
    ProtocolError.__init__(error, code, message, detail=detail, local=local)
    return error


class ProtocolError(Exception):
    """Bad realtime protocol input, ours (``local=True``) or the peer's (``local=False``).

    ``code`` is one of the codes in the module docstring, ``message`` a sentence for humans,
    ``detail`` a small JSON-able dict (the event type, the field, …) or ``None``.
    """

    code: str
    message: str
    detail: dict[str, Any] | None
    local: bool

    def __init__(
        self,
        code: str,
        message: str,
        *,
        detail: dict[str, Any] | None = None,
        local: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail
        self.local = local

    def to_payload(self) -> dict[str, Any]:
        """The ``protocol_error`` event payload: ``{"code", "message", "detail"}``."""
        return {"code": self.code, "message": self.message, "detail": self.detail}

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.code, self.message, self.detail, self.local))

    def __repr__(self) -> str:
        side = "local" if self.local else "remote"
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, {side})"


class QueueFull(ProtocolError):
    """A bounded outbound queue refused an event; it was *not* enqueued.

    Raised for control events only (audio is dropped oldest-first instead).  The async shell
    waits for the queue to drain (a connection to come up) and submits the event again.
    """

    def __init__(self, category: str, limit: int) -> None:
        super().__init__(
            "queue_full",
            f"the {category} queue is full ({limit} events waiting); event not enqueued",
            detail={"category": category, "limit": limit},
            local=True,
        )


class SessionConfigError(ProtocolError, ValueError):
    """A session configuration is invalid; ``detail["field"]`` names the field (dotted)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(
            "invalid_session_config",
            f"session config field {field!r}: {problem}",
            detail={"field": field},
            local=True,
        )

    @property
    def field(self) -> str:
        assert self.detail is not None
        return self.detail["field"]
