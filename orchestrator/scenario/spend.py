"""A run's usage and spend as results.json reports them: the price of each protocol's model,
and the ``usage`` section (tokens, Live seconds, cost, the budget's state)."""

from __future__ import annotations

import sys
from typing import Any

from orchestrator.usage import LIVE_FIELDS, PRICES, PRICES_AS_OF, TOKEN_FIELDS, Price, price_for

from .budget import BudgetGate
from .model import Scenario
from .runmetrics import RunMetrics

__all__ = ["per_unit_costs", "run_prices", "spend_summary"]


def run_prices(scenario: Scenario, *, warn: bool = True) -> dict[str, tuple[str, Price | None]]:
    """Each protocol the scenario's populations speak -> (its model, that model's price or None).
    A model with no price is said once on stderr: its cost is unknown, never 0."""
    from actors.proto.live.config import live_model

    table = {**PRICES, **scenario.prices}
    out: dict[str, tuple[str, Price | None]] = {}
    for population in scenario.populations:
        protocol = population.protocol
        if protocol in out:
            continue
        model = live_model(scenario.session.model) if protocol == "live" else scenario.session.model
        price = price_for(model, table)
        if price is None and warn:
            print(f"warning: no price for model {model!r}: its cost is unknown (add it under "
                  f"prices: in the scenario)", file=sys.stderr, flush=True)
        out[protocol] = (model, price)
    return out


def per_unit_costs(cost: float | None, counters: dict[str, float]) -> dict[str, float | None]:
    """``cost_per_turn_usd`` and ``cost_per_session_usd`` of a spend over the run's counters
    (None when the cost is unknown or nothing was counted)."""
    turns = counters.get("turns.completed", 0)
    ended = sum(counters.get(f"sessions.{o}", 0) for o in ("completed", "failed", "stopped"))
    return {"cost_per_turn_usd": None if cost is None or not turns else round(cost / turns, 6),
            "cost_per_session_usd": None if cost is None or not ended else round(cost / ended, 6)}


def spend_summary(metrics: RunMetrics, prices: dict[str, tuple[str, Price | None]],
                  budget: BudgetGate | None) -> dict[str, Any]:
    counters = metrics.registry.counters
    known = all(price is not None for _, price in prices.values())
    cost = counters.get("cost.usd", 0.0) if known else None
    return {
        "tokens": {name.split(".", 1)[1]: int(counters.get(name, 0)) for name in TOKEN_FIELDS},
        "live_active_seconds": counters.get(LIVE_FIELDS[0], 0),
        "cost_usd": None if cost is None else round(cost, 6),
        "cost_known": known,
        **per_unit_costs(cost, counters),
        "prices": {protocol: {"model": model, "known": price is not None,
                              "as_of": PRICES_AS_OF if price is not None and price in PRICES.values() else None,
                              "source": price.source if price is not None else None}
                   for protocol, (model, price) in prices.items()},
        "budget": budget.summary() if budget is not None else None,
    }
