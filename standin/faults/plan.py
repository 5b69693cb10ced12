"""Fault injection for the embedded server: the plan, per-connection decisions, counters.

:class:`FaultPlan` is a frozen value; replace it at run time (``server.faults = FaultPlan(...)``)
and every connection sees the new plan at its next decision (timed faults are re-planned at once).
Decisions per connection are sans-I/O (:class:`ConnectionFaults`) and drawn from a
``random.Random`` seeded with ``f"{plan.seed}:{connection index}"``, so a run is reproducible.

=========================  ===================================================================
field                      effect
=========================  ===================================================================
``drop_after_events``      drop the connection right after it has sent N server events
``drop_rate``              probability per connection per second of a drop (Poisson process)
``drop_after_s``           drop every connection this many seconds after it connected
``drop_mode``              how a drop happens: ``"abort"`` = TCP closed without a close frame
                           (the client sees 1006), ``"close"`` = close frame with ``drop_close_code``
``drop_close_code``        the close code for ``drop_mode="close"`` (e.g. 1011, 1012)
``reject_keys``            every authentication fails (WebSocket and HTTP)
``latency_ms``             every server event is sent this much later than it was produced
``expire_after_s``         after this long: ``error`` ``session_expired`` then close 1001
``malformed_every``        after every N real server events, send one malformed frame of a kind
                           drawn from ``malformed_kinds``: ``invalid_json``, ``unknown_type``,
                           ``binary``, ``oversized`` (a text frame of ``oversized_bytes``)
``seed``                   seeds the per-connection random choices
``max_concurrent_sessions``  at most N realtime WebSocket sessions open at once, server-wide: one
                           more is refused as the hosted service refuses (an ``error`` event
                           ``rate_limit_exceeded``, then close 1013 "try again later")
``tokens_per_minute``      a response asked for once the tokens of the last 60 s reach N gets
                           an ``error`` ``rate_limit_exceeded`` (no response)
``mints_per_minute``       client-secret mints beyond N in the last 60 s get HTTP 429
=========================  ===================================================================

With any of the last three set, ``rate_limits.updated`` reports their real limit and remaining
(``limits.py``): ``tokens`` from ``tokens_per_minute``, and an extra ``sessions`` entry (limit
``max_concurrent_sessions``, remaining = free slots), which the hosted service does not send.

WebRTC calls (``rtc_session.py``) apply the same plan: a drop closes the peer connection
(``drop_mode``/``drop_close_code`` do not apply), ``drop_after_events`` counts data-channel
events, ``reject_keys`` refuses ``POST /v1/realtime/calls`` with ``401``.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Literal

import attrs

__all__ = ["ConnectionFaults", "Drop", "Expire", "FaultPlan", "FaultStats", "MALFORMED_KINDS"]

MALFORMED_KINDS = ("invalid_json", "unknown_type", "binary", "oversized")
_v = attrs.validators
_optional = attrs.validators.optional


def _check_kinds(_inst: object, _attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    unknown = set(value) - set(MALFORMED_KINDS)
    if unknown or not value:
        raise ValueError(f"malformed_kinds must be a non-empty subset of {MALFORMED_KINDS}")


@attrs.frozen(kw_only=True)
class FaultPlan:
    seed: int = 0
    drop_after_events: int | None = attrs.field(default=None, validator=_optional(_v.ge(1)))
    drop_rate: float = attrs.field(default=0.0, validator=[_v.ge(0.0), _v.le(1.0)])
    drop_after_s: float | None = attrs.field(default=None, validator=_optional(_v.ge(0.0)))
    drop_mode: Literal["abort", "close"] = attrs.field(default="abort", validator=_v.in_(("abort", "close")))
    drop_close_code: int = attrs.field(default=1011, validator=[_v.ge(1000), _v.le(4999)])
    reject_keys: bool = False
    latency_ms: float = attrs.field(default=0.0, validator=_v.ge(0.0))
    expire_after_s: float | None = attrs.field(default=None, validator=_optional(_v.ge(0.0)))
    malformed_every: int | None = attrs.field(default=None, validator=_optional(_v.ge(1)))
    malformed_kinds: tuple[str, ...] = attrs.field(
        default=MALFORMED_KINDS, converter=tuple, validator=_check_kinds
    )
    oversized_bytes: int = 2**20 + 1
    max_concurrent_sessions: int | None = attrs.field(default=None, validator=_optional(_v.ge(0)))
    tokens_per_minute: int | None = attrs.field(default=None, validator=_optional(_v.ge(1)))
    mints_per_minute: int | None = attrs.field(default=None, validator=_optional(_v.ge(0)))

    @property
    def active(self) -> bool:
        return self != FaultPlan(seed=self.seed)

    @property
    def acts_per_event(self) -> bool:
        """It delays events or acts after them (latency, malformed frames, drop after N
        events): each event must go through :meth:`ConnectionFaults.after_event` as it is sent."""
        return self.latency_ms > 0 or self.malformed_every is not None or self.drop_after_events is not None


@attrs.frozen
class Drop:
    cause: Literal["after_events", "rate", "after_s", "now"]  # now: server.drop_connections
    mode: Literal["abort", "close"]
    code: int


@attrs.frozen
class Expire:
    cause: Literal["fault", "max_session"]


@attrs.define
class FaultStats:
    """What was injected, server-wide (``server.stats.faults``)."""

    drops: Counter = attrs.field(factory=Counter)  # by cause: after_events, rate, after_s, now
    aborted: int = 0  # TCP closed without a close frame
    abort_fallbacks: int = 0  # abort impossible here (socket not found): closed with 1011
    closed_with_code: Counter = attrs.field(factory=Counter)  # close code -> count
    keys_rejected: int = 0
    delayed_events: int = 0
    sessions_expired: int = 0
    malformed: Counter = attrs.field(factory=Counter)  # kind -> count
    #: refused as over a limit: "sessions" (connections), "tokens" (responses), "mints" (HTTP 429)
    rate_limited: Counter = attrs.field(factory=Counter)
    rtc_calls_closed: int = 0  # WebRTC calls whose peer connection a drop closed


@attrs.define
class ConnectionFaults:
    """The fault decisions of one connection (sans-I/O: times are trio-clock seconds)."""

    index: int
    connected_at: float
    max_session_s: float
    rng: random.Random
    events_sent: int = 0
    _rate_plan: FaultPlan | None = None
    _rate_deadline: float | None = None

    @classmethod
    def for_connection(
        cls, plan: FaultPlan, index: int, connected_at: float, max_session_s: float
    ) -> ConnectionFaults:
        return cls(index, connected_at, max_session_s, random.Random(f"{plan.seed}:{index}"))

    def next_timed(self, plan: FaultPlan, now: float) -> tuple[float, Drop | Expire]:
        """The earliest timed fault under ``plan`` (the natural session end at the latest)."""
        if plan is not self._rate_plan:
            # A new plan: re-draw the rate deadline from now (the process is memoryless).
            self._rate_plan = plan
            self._rate_deadline = None
            if plan.drop_rate >= 1.0:
                self._rate_deadline = now
            elif plan.drop_rate > 0.0:
                self._rate_deadline = now + self.rng.expovariate(-math.log1p(-plan.drop_rate))
        candidates: list[tuple[float, Drop | Expire]] = [
            (self.connected_at + self.max_session_s, Expire("max_session"))
        ]
        if plan.expire_after_s is not None:
            candidates.append((self.connected_at + plan.expire_after_s, Expire("fault")))
        if plan.drop_after_s is not None:
            drop = Drop("after_s", plan.drop_mode, plan.drop_close_code)
            candidates.append((self.connected_at + plan.drop_after_s, drop))
        if self._rate_deadline is not None:
            candidates.append((self._rate_deadline, Drop("rate", plan.drop_mode, plan.drop_close_code)))
        return min(candidates, key=lambda c: c[0])

    def count_sent(self, count: int) -> None:
        """``count`` events sent under a plan that does not act per event (what
        :meth:`after_event` would have counted, and decided nothing for)."""
        self.events_sent += count

    def after_event(self, plan: FaultPlan) -> tuple[str | None, Drop | None]:
        """Count one real server event sent; returns (malformed kind to inject, drop to do)."""
        self.events_sent += 1
        malformed = None
        if plan.malformed_every and self.events_sent % plan.malformed_every == 0:
            malformed = self.rng.choice(plan.malformed_kinds)
        drop = None
        if plan.drop_after_events is not None and self.events_sent >= plan.drop_after_events:
            drop = Drop("after_events", plan.drop_mode, plan.drop_close_code)
        return malformed, drop
