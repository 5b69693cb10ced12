"""Admission paced under the service's rate limits: the scenario's ``rate_limits:`` and the gate
the runner asks before it adds a session.

::

    rate_limits: {headroom: 10%, pace: true, max_concurrent: 40}

``headroom`` (a percentage, ``10%``, or a fraction below 1, ``0.1``) is the share of every limit
kept unused; ``pace`` (default true) makes the runner wait before adding a session while the
limits say it would be refused; ``max_concurrent`` (optional) is a concurrency limit the file
knows of (the hosted service announces none). Without ``rate_limits:`` sessions start when their
phase says; refusals are counted either way (``rate_limited.*``).

The gate (:class:`AdmissionGate`) reads the fleet's tracker (``orchestrator/ratelimits.py``) at
each decision: the latest ``rate_limits.updated`` readings for the session's model and any
concurrency ceiling refusals taught. While nothing is known (no reading, no refusal, no
``max_concurrent``), it admits one session and holds the rest until the first
``rate_limits.updated`` arrives or that session ends (at most ``PROBE_S``, 10 s: a service that
announces nothing is not waited on forever). Then it holds a new session (``admission_hold``) while the
sessions it admitted are at the ceiling less the headroom, or while an announced request or
token limit has no more than the headroom left before its reset. It is separate from the budget
gate (``budget.py``): the runner asks each in turn.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NewType

import attrs
import trio

from orchestrator.ratelimits import admission_hold, concurrency_ceiling

from .checks import at_least
from .errors import InvalidField

__all__ = ["AdmissionGate", "Percent", "RateLimits", "parse_percent"]

#: a share, as a file writes it (``10%``, ``0.1``); held as a fraction
Percent = NewType("Percent", float)

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
#: while held, how often the gate looks at the limits again (a session ending wakes it at once)
RECHECK_S = 0.25
#: see ``AdmissionGate.probe_s``
PROBE_S = 10.0


def parse_percent(value: Any) -> float:
    """``"10%"`` or ``0.1`` as the fraction 0.1; 0 <= share < 1."""
    if isinstance(value, bool):
        raise InvalidField(f"expected a percentage like 10% or a fraction like 0.1, got {value!r}")
    if isinstance(value, (int, float)):
        share = float(value)
        if share >= 1:
            raise InvalidField(f"a fraction below 1 (or write a percentage: {value:g}%), got {value!r}")
    else:
        match = _PERCENT.match(str(value))
        if match is None:
            raise InvalidField(f"expected a percentage like 10% or a fraction like 0.1, got {value!r}")
        share = float(match.group(1)) / 100
    if not 0 <= share < 1:
        raise InvalidField(f"must be at least 0% and below 100%, got {value!r}")
    return share


@attrs.frozen
class RateLimits:
    headroom: Percent = attrs.field(default=Percent(0.1), converter=parse_percent)
    pace: bool = True
    max_concurrent: int | None = attrs.field(default=None, validator=at_least(1))


@attrs.define(eq=False)
class AdmissionGate:
    """Admits sessions under the limits; ``readings(model)`` returns the fleet's latest
    readings for that model and the learned concurrency (``Fleet.admission_readings``)."""

    config: RateLimits
    readings: Callable[[str | None], tuple[list[Any], int | None]]
    #: sessions admitted and not yet released
    active: int = 0
    admitted: int = 0
    #: admissions that had to wait
    delayed: int = 0
    #: with nothing known of the limits, how long the first session admitted may take to
    #: bring the first ``rate_limits.updated`` before others are admitted regardless
    probe_s: float = PROBE_S
    _changed: trio.Event = attrs.field(factory=trio.Event)
    _probe_until: float | None = None

    async def admit(self, model: str | None = None) -> float:
        """Wait (when pacing) until a session may be added; count it. Returns the seconds
        waited. Cancellable: a session never admitted is not counted."""
        start = trio.current_time()
        while self.config.pace:
            now = trio.current_time()
            until = self._hold(model, now)
            if until is None:
                break
            changed = self._changed
            with trio.move_on_at(min(until, now + RECHECK_S)):
                await changed.wait()
        waited = trio.current_time() - start
        if waited > 0:
            self.delayed += 1
        if self._probe_until is None:
            self._probe_until = trio.current_time() + self.probe_s
        self.active += 1
        self.admitted += 1
        return waited

    def _hold(self, model: str | None, now: float) -> float | None:
        readings, learned = self.readings(model)
        if not readings and learned is None and self.config.max_concurrent is None and self.active:
            # nothing known yet: one session probes for the first rate_limits.updated
            if self._probe_until is not None and now < self._probe_until:
                return self._probe_until
        return admission_hold(readings, now=now, active=self.active, headroom=self.config.headroom,
                              max_concurrent=self.config.max_concurrent, learned=learned)

    def release(self) -> None:
        """An admitted session ended: its slot is free."""
        self.active = max(0, self.active - 1)
        self._changed.set()
        self._changed = trio.Event()

    def summary(self, model: str | None = None) -> dict[str, Any]:
        readings, learned = self.readings(model)
        ceiling, source = concurrency_ceiling(readings, configured=self.config.max_concurrent,
                                              learned=learned)
        return {"pace": self.config.pace, "headroom": self.config.headroom,
                "max_concurrent": ceiling, "max_concurrent_from": source,
                "admitted": self.admitted, "delayed": self.delayed}
