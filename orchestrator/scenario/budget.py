"""A run's spending limit: the scenario's ``budget:`` and the gate that keeps a run under it.

::

    budget: {max_cost: 20 USD, max_session_minutes: 300}

``max_cost`` is USD at the price table's prices (``orchestrator/usage.py``); a number, or a
number and ``USD``. ``max_session_minutes`` caps connected session time summed over sessions
(what GPT-Live bills). ``rtfleet run --max-cost 5`` overrides ``max_cost``.

The gate (:class:`BudgetGate`) is asked before each turn a script starts (``say``, ``play``,
``answer_tool_call``): it admits the turn only while the spend so far plus the turns already
in flight and this one, each at the mean cost of a turn so far, stays within ``max_cost``, so
a run ends within about one turn's cost of its budget rather than a turn per session past it.
Once the spend (or the session minutes) reaches the limit, or a turn is refused, the gate is
``reached``: no turn is admitted any more, the turns in flight may end (their usage is spend
too; at most 10 s), then the runner stops the populations and ends the live sessions cleanly
(a normal close),
writes its results (``"verdict": "budget"``, a ``budget`` mark where it stopped) and exits
with code 4.
"""

from __future__ import annotations

import re
from typing import Any, NewType

import attrs
import trio

from .errors import InvalidField

__all__ = ["Budget", "BudgetGate", "Money", "parse_money"]

#: an amount in USD, as a file writes it (``20``, ``"20 USD"``)
Money = NewType("Money", float)

#: how long turns wait for the first turn's cost before going on without it
PROBE_WAIT = 30.0
_MONEY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]{3})?\s*$")


def parse_money(value: Any) -> float | None:
    """``20``, ``20.5`` or ``"20 USD"`` as USD; None stays None. Other currencies are refused
    (prices are in USD)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidField(f"expected an amount like 20 or '20 USD', got {value!r}")
    if isinstance(value, (int, float)):
        amount, unit = float(value), "USD"
    else:
        match = _MONEY.match(str(value))
        if match is None:
            raise InvalidField(f"expected an amount like 20 or '20 USD', got {value!r}")
        amount, unit = float(match.group(1)), (match.group(2) or "USD").upper()
    if unit != "USD":
        raise InvalidField(f"the budget is in USD (the price table's currency), not {unit}")
    if amount <= 0:
        raise InvalidField(f"must be > 0, got {value!r}")
    return amount


def _minutes(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidField(f"expected a number of minutes > 0, got {value!r}")
    return float(value)


@attrs.frozen
class Budget:
    max_cost: Money | None = None
    max_session_minutes: float | None = attrs.field(default=None, validator=lambda _i, _a, v: _minutes(v))

    def __attrs_post_init__(self) -> None:
        if self.max_cost is not None:
            object.__setattr__(self, "max_cost", parse_money(self.max_cost))
        if self.max_cost is None and self.max_session_minutes is None:
            raise InvalidField("give max_cost (USD) and/or max_session_minutes")


@attrs.define(eq=False)
class BudgetGate:
    budget: Budget
    spent: float = 0.0
    session_seconds: float = 0.0
    turns_costed: int = 0
    in_flight: int = 0
    refused: int = 0
    reason: str | None = None
    reached: trio.Event = attrs.field(factory=trio.Event)
    _idle: trio.Event = attrs.field(factory=trio.Event)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    async def admit_turn(self) -> bool:
        """May a script start one more turn? (Counts it in flight when it may.) Until a turn's
        cost is known, one turn at a time is admitted (its cost is the estimate for the rest):
        a fleet's first turns cannot all start blind."""
        while True:
            if self.reached.is_set():
                self.refused += 1
                return False
            limit = self.budget.max_cost
            if limit is None or self.turns_costed or self.in_flight == 0:
                break
            with trio.move_on_after(PROBE_WAIT):
                await self._changed.wait()
                continue
            break  # the probe turn did not end: go on without an estimate
        if limit is not None and self.turns_costed:
            mean = self.spent / self.turns_costed
            if self.spent + (self.in_flight + 1) * mean > limit:
                self.refused += 1
                self._reach(f"max_cost {limit:g} USD: spent {self.spent:.4f} USD, "
                            f"{self.in_flight} turn(s) in flight at about {mean:.4f} USD each")
                return False
        self.in_flight += 1
        if self._idle.is_set():
            self._idle = trio.Event()
        return True

    def turn_done(self, cost: float | None) -> None:
        """A response ended (``cost`` None: the model has no price)."""
        self.in_flight = max(0, self.in_flight - 1)
        if self.in_flight == 0:
            self._idle.set()
        self._changed.set()
        self._changed = trio.Event()
        if cost is None:
            return
        self.spent += cost
        self.turns_costed += 1
        limit = self.budget.max_cost
        if limit is not None and self.spent >= limit:
            self._reach(f"max_cost {limit:g} USD: spent {self.spent:.4f} USD")

    async def stop_after_in_flight(self, scope: trio.CancelScope, grace: float) -> None:
        """Once reached: let the turns in flight end (their usage is spend too; at most
        ``grace`` seconds), then cancel ``scope`` (the run's sessions close cleanly)."""
        await self.reached.wait()
        with trio.move_on_after(grace):
            while self.in_flight > 0:
                await self._idle.wait()
        scope.cancel()

    def add(self, cost: float) -> None:
        """Spend that is no turn's (GPT-Live's active seconds)."""
        self.spent += cost
        limit = self.budget.max_cost
        if limit is not None and self.spent >= limit:
            self._reach(f"max_cost {limit:g} USD: spent {self.spent:.4f} USD")

    def add_session_seconds(self, seconds: float) -> None:
        self.session_seconds += seconds
        limit = self.budget.max_session_minutes
        if limit is not None and self.session_seconds >= limit * 60:
            self._reach(f"max_session_minutes {limit:g}: {self.session_seconds / 60:.2f} session-minutes")

    def _reach(self, reason: str) -> None:
        if not self.reached.is_set():
            self.reason = reason
            self.reached.set()
            self._changed.set()

    def summary(self) -> dict[str, Any]:
        return {"max_cost_usd": self.budget.max_cost,
                "max_session_minutes": self.budget.max_session_minutes,
                "spent_usd": round(self.spent, 6), "session_minutes": round(self.session_seconds / 60, 3),
                "reached": self.reached.is_set(), "reason": self.reason,
                "turns_refused": self.refused}
