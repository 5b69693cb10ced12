"""How one connection of a session ended, as a value the supervisor decides on.

Actors return an :class:`ActorExit` from ``run``; they never decide whether to come back.
Close codes are classified here once, for every transport that has them.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["ExitReason", "ActorExit", "RETRYABLE_CLOSE_CODES", "AUTH_CLOSE_CODES",
           "LIVE_CLOSE_REASONS", "live_closed_exit"]


class ExitReason(enum.StrEnum):
    """Why one connection of a session ended."""

    #: the peer closed normally (1000) or the session finished its work
    NORMAL = "normal"
    #: the peer ended the session for good, not as a fault (GPT-Live ``session.closed``
    #: ``close_requested`` / ``remote_hangup``): closed, never restarted, whatever the policy
    ENDED = "ended"
    #: the connection was lost or closed with a retryable code
    DROPPED = "dropped"
    #: the credential was refused: do not retry without a new key
    AUTH = "auth"
    #: the session reached its deadline (or we recycled it before the cap): reconnect at once
    RECYCLE = "recycle"
    #: the peer closed with a code that says "do not come back" (policy violation, …)
    FATAL = "fatal"
    #: the actor raised: a bug or an unexpected failure
    CRASH = "crash"


#: close codes worth a reconnect (going away, abnormal, internal error, restart, try later,
#: no status, TLS failure)
RETRYABLE_CLOSE_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1015})
AUTH_CLOSE_CODES = frozenset({4001, 4003, 1008})


@attrs.frozen
class ActorExit:
    reason: ExitReason
    code: int | None = None
    detail: str = ""

    @classmethod
    def from_close(cls, code: int | None, detail: str = "") -> ActorExit:
        if code is None or code in RETRYABLE_CLOSE_CODES:
            return cls(ExitReason.DROPPED, code, detail)
        if code == 1000:
            return cls(ExitReason.NORMAL, code, detail)
        if code in AUTH_CLOSE_CODES:
            return cls(ExitReason.AUTH, code, detail)
        if 4000 <= code < 5000 or code in (1002, 1003, 1007, 1009, 1010):
            return cls(ExitReason.FATAL, code, detail)
        return cls(ExitReason.DROPPED, code, detail)

    @property
    def abnormal(self) -> bool:
        return self.reason is not ExitReason.NORMAL and self.reason is not ExitReason.ENDED


#: GPT-Live ``session.closed`` reasons -> what the supervisor does
LIVE_CLOSE_REASONS = {
    "expired": ExitReason.RECYCLE,  # the duration limit: a new session at once
    "connection_lost": ExitReason.DROPPED,  # reconnect (with backoff)
    "close_requested": ExitReason.ENDED,  # an application close: closed
    "remote_hangup": ExitReason.ENDED,  # the call ended
    "content": ExitReason.FATAL,  # a safety filter ended it: an error, with the reason
}


def live_closed_exit(reason: str, code: int | None) -> ActorExit:
    """How a connection ends after the server's Live ``session.closed`` said why."""
    kind = LIVE_CLOSE_REASONS.get(reason, ExitReason.DROPPED)
    return ActorExit(kind, code, f"session.closed: {reason}")
