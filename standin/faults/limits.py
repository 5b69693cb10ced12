"""The embedded server's rate limits: what the fault plan's limits enforce, and what
``rate_limits.updated`` announces (sans-I/O: times are trio-clock seconds, given by the caller).

One :class:`RateLimiter` per server, shared by its connections; the limits themselves live in
the live :class:`~standin.faults.plan.FaultPlan` (``max_concurrent_sessions``,
``tokens_per_minute``, ``mints_per_minute``), so a new plan applies at the next decision.

* sessions: :meth:`admit_session` counts an open realtime session, or refuses one over
  ``max_concurrent_sessions``; :meth:`session_closed` frees its slot.
* tokens: :meth:`admit_response` refuses a response once the tokens spent in the last 60 s
  reach ``tokens_per_minute``; :meth:`spend` books a response's tokens when it starts.
* mints: :meth:`admit_mint` refuses a client-secret mint beyond ``mints_per_minute`` in 60 s.

:meth:`announce` is the ``rate_limits`` list of ``rate_limits.updated``: ``requests`` and
``tokens`` as the hosted service names them, with the plan's limits when set (else the fixed
large numbers the model has always announced, ``tokens`` remaining still counted), plus a
``sessions`` entry when ``max_concurrent_sessions`` is set. The hosted service announces no
concurrency limit; ``sessions`` is this server's extension, so a client can be tested pacing
its admission against a limit it is told.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from standin.faults.plan import FaultPlan, FaultStats

__all__ = ["BoundLimits", "RateLimiter", "WINDOW_S"]

#: the window of the per-minute limits
WINDOW_S = 60.0
#: what ``rate_limits.updated`` announces when the plan sets no limit (as before limits existed)
DEFAULT_REQUESTS = 10_000
DEFAULT_TOKENS = 2_000_000


@attrs.define
class RateLimiter:
    stats: FaultStats = attrs.field(factory=FaultStats)
    open_sessions: int = 0
    #: (time, tokens) of the responses started in the window, oldest first
    _tokens: deque[tuple[float, int]] = attrs.field(factory=deque)
    _tokens_used: int = 0
    _mints: deque[float] = attrs.field(factory=deque)

    # -- sessions ---------------------------------------------------------------------------

    def admit_session(self, plan: FaultPlan) -> bool:
        """Count one more open session, or refuse it (False) at ``max_concurrent_sessions``."""
        limit = plan.max_concurrent_sessions
        if limit is not None and self.open_sessions >= limit:
            self.stats.rate_limited["sessions"] += 1
            return False
        self.open_sessions += 1
        return True

    def session_closed(self) -> None:
        self.open_sessions = max(0, self.open_sessions - 1)

    # -- tokens -----------------------------------------------------------------------------

    def admit_response(self, plan: FaultPlan, now: float) -> str | None:
        """None when a response may start now, else the refusal's message."""
        limit = plan.tokens_per_minute
        if limit is None:
            return None
        used = self.tokens_used(now)
        if used < limit:
            return None
        self.stats.rate_limited["tokens"] += 1
        return (f"Rate limit reached for tokens per min (TPM): Limit {limit}, Used {used}. "
                f"Please try again in {self._tokens_reset(now):.3g}s.")

    def spend(self, now: float, tokens: int) -> None:
        self._prune(now)
        self._tokens.append((now, tokens))
        self._tokens_used += tokens

    def tokens_used(self, now: float) -> int:
        self._prune(now)
        return self._tokens_used

    # -- client secrets ---------------------------------------------------------------------

    def admit_mint(self, plan: FaultPlan, now: float) -> bool:
        limit = plan.mints_per_minute
        if limit is None:
            return True
        while self._mints and self._mints[0] <= now - WINDOW_S:
            self._mints.popleft()
        if len(self._mints) >= limit:
            self.stats.rate_limited["mints"] += 1
            return False
        self._mints.append(now)
        return True

    def mint_reset(self, now: float) -> float:
        """Seconds until a mint slot frees (the ``Retry-After`` of a 429)."""
        return max(0.0, self._mints[0] + WINDOW_S - now) if self._mints else 0.0

    # -- announcing -------------------------------------------------------------------------

    def announce(self, plan: FaultPlan, now: float) -> list[dict[str, Any]]:
        """The ``rate_limits`` of a ``rate_limits.updated`` sent now."""
        tokens = plan.tokens_per_minute or DEFAULT_TOKENS
        entries = [
            {"name": "requests", "limit": DEFAULT_REQUESTS, "remaining": DEFAULT_REQUESTS - 1,
             "reset_seconds": 0.006},
            {"name": "tokens", "limit": tokens, "remaining": max(0, tokens - self.tokens_used(now)),
             "reset_seconds": round(self._tokens_reset(now), 3)},
        ]
        sessions = plan.max_concurrent_sessions
        if sessions is not None:
            entries.append({"name": "sessions", "limit": sessions,
                            "remaining": max(0, sessions - self.open_sessions), "reset_seconds": 0.0})
        return entries

    def bind(self, plan: Callable[[], FaultPlan]) -> BoundLimits:
        """What one model session is given: this limiter under the server's live plan."""
        return BoundLimits(self, plan)

    # -- internals --------------------------------------------------------------------------

    def _prune(self, now: float) -> None:
        while self._tokens and self._tokens[0][0] <= now - WINDOW_S:
            self._tokens_used -= self._tokens.popleft()[1]

    def _tokens_reset(self, now: float) -> float:
        """Seconds until the oldest tokens in the window leave it (0: none spent)."""
        self._prune(now)
        return max(0.0, self._tokens[0][0] + WINDOW_S - now) if self._tokens else 0.0


@attrs.frozen
class BoundLimits:
    """The limiter as a model session sees it (``RealtimeSession.limits``)."""

    limiter: RateLimiter
    plan: Callable[[], FaultPlan]

    def admit_response(self, now: float) -> str | None:
        return self.limiter.admit_response(self.plan(), now)

    def spend(self, now: float, tokens: int) -> None:
        self.limiter.spend(now, tokens)

    def announce(self, now: float) -> list[dict[str, Any]]:
        return self.limiter.announce(self.plan(), now)
