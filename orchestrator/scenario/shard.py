"""Scale-out: a scenario split into shards, and shard results merged into one run.

``shard(scenario, index, count)`` gives shard ``index`` (0-based) of ``count`` its share of
every population: ``sessions`` and ``concurrency`` (and a concurrency ``ramp_to``) are split
into whole sessions, the remainder going to the lowest indices; arrival rates (and rate
ramps) are divided by ``count``.  The seed becomes ``seed + index`` so shards draw different
arrivals.  Faults stay whole: each shard drops its own share of connections; with ``--shard``
alone (separate hosts) each shard against the embedded target runs its own server and its own
fault timeline, while ``--workers N`` runs one shared embedded server and the server-side fault
timeline in the parent (see :mod:`orchestrator.scenario.workers`).

``merge_results([...])`` adds shard results the way one big run would have counted them:
counters add, histograms merge bucket by bucket (percentiles are recomputed from the merged
buckets, never averaged), per-second series merge slot by slot (slots are aligned on each
shard's own start), gauges add; then the thresholds are evaluated again on the merged
metrics.  The merged ``verdict`` is that evaluation.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import attrs

from orchestrator.metrics import MetricsRegistry, TimeSeries, make_lookup
from orchestrator.scenario.model import Phase, Scenario
from orchestrator.scenario.results import population_section
from orchestrator.scenario.thresholds import evaluate, parse_threshold
from orchestrator.scenario.spend import per_unit_costs

__all__ = ["shard", "parse_shard", "merge_results", "ShardSpecError"]


class ShardSpecError(ValueError):
    pass


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (1-based I, as people count) -> (index 0-based, count)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise ShardSpecError(f"shard must look like I/N (e.g. 2/4), not {text!r}")
    number, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= number <= count:
        raise ShardSpecError(f"shard {text!r}: need 1 <= I <= N")
    return number - 1, count


def _share(total: int, index: int, count: int) -> int:
    base, extra = divmod(total, count)
    return base + (1 if index < extra else 0)


def _split_phase(phase: Phase, index: int, count: int) -> Phase | None:
    if phase.sessions is not None:
        n = _share(phase.sessions, index, count)
        return attrs.evolve(phase, sessions=n) if n else None
    if phase.concurrency is not None:
        ramp = phase.ramp_to
        return attrs.evolve(
            phase,
            concurrency=_share(phase.concurrency, index, count),
            ramp_to=None if ramp is None else float(_share(int(ramp), index, count)),
        )
    ramp = phase.ramp_to
    return attrs.evolve(phase, arrival_rate=(phase.arrival_rate or 0.0) / count,
                        ramp_to=None if ramp is None else ramp / count)


def shard(scenario: Scenario, index: int, count: int) -> Scenario:
    if count == 1:
        return scenario
    populations = []
    for population in scenario.populations:
        phases = []
        for phase in population.phases:
            part = _split_phase(phase, index, count)
            if part is not None:
                phases.append(part)
            else:  # no sessions of this phase here: keep its place in time
                phases.append(Phase(duration=phase.duration, concurrency=0, name=phase.name)
                              if phase.duration else None)
        phases = [p for p in phases if p is not None]
        if phases:
            populations.append(attrs.evolve(population, phases=tuple(phases)))
    return attrs.evolve(scenario, populations=tuple(populations), seed=scenario.seed + index,
                        name=scenario.name)


def merge_results(parts: Iterable[dict[str, Any]], *,
                  parent: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge shard results; ``parent`` (optional) is what the process that ran the shards
    counted itself (``rtfleet run --workers``: its fault timeline): ``{"metrics": snapshot,
    "marks": [...], "replace": [counter names]}``.  Its counters named in ``replace`` replace
    the shards' copies (every worker counts the same timeline entry); the rest adds."""
    parts = list(parts)
    if not parts:
        raise ValueError("nothing to merge")
    first = parts[0]
    names = {p["scenario"]["name"] for p in parts}
    if len(names) != 1:
        raise ValueError(f"results of different scenarios cannot be merged: {sorted(names)}")
    registry = MetricsRegistry()
    series = TimeSeries(interval=first["timeline"]["interval"], origin=first["timeline"]["origin"])
    marks: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    populations: dict[str, tuple[dict[str, str], MetricsRegistry]] = {}
    for index, part in enumerate(parts):
        registry.merge(part["metrics"])
        for name, pop in (part.get("populations") or {}).items():
            info = {"protocol": pop.get("protocol", ""), "transport": pop.get("transport", "")}
            populations.setdefault(name, (info, MetricsRegistry()))[1].merge(pop.get("metrics") or {})
        series.merge(part["timeline"])
        seen = {(m["kind"], m["label"]) for m in marks}
        for mark in part.get("marks", []):
            if (mark["kind"], mark["label"]) not in seen:
                marks.append(mark)
        errors.extend({**e, "shard": str(index)} for e in part["sessions"].get("errors", []))
    if parent is not None:
        for name in parent.get("replace", ()):
            registry.counters.pop(name, None)
        registry.merge(parent.get("metrics", {}))
        seen = {(m["kind"], m["label"]) for m in marks}
        for mark in parent.get("marks", []):
            if (mark["kind"], mark["label"]) not in seen:
                marks.append(mark)
    # gauges that are ratios must be recomputed, not added
    succeeded = registry.counters.get("reconnect.succeeded", 0)
    decided = succeeded + registry.counters.get("reconnect.failed", 0)
    registry.gauges["reconnect.success_rate"] = succeeded / decided if decided else 1.0
    started = min(p["started_at"] for p in parts)
    finished = max(p["finished_at"] for p in parts)
    elapsed = max(p["duration_s"] for p in parts)
    thresholds = [parse_threshold(t["expression"]) for t in first["thresholds"]]
    verdicts = evaluate(thresholds, make_lookup(registry, elapsed=elapsed))
    c = registry.counters
    return {
        **first,
        "scenario": {**first["scenario"], "shards": len(parts)},
        "started_at": started,
        "finished_at": finished,
        "duration_s": elapsed,
        "verdict": ("budget" if any(p.get("verdict") == "budget" for p in parts)
                    else "pass" if all(v.passed for v in verdicts) else "fail"),
        "usage": merge_usage([p.get("usage") for p in parts], registry.counters),
        "thresholds": [{"expression": v.threshold.source_text, "observed": v.observed,
                        "passed": v.passed, "reason": v.reason} for v in verdicts],
        "metrics": registry.snapshot(),
        "summary": {
            "histograms": {n: h.summary() for n, h in sorted(registry.histograms.items())},
            "counters": dict(sorted(registry.counters.items())),
            "gauges": dict(sorted(registry.gauges.items())),
        },
        "populations": {name: population_section(info, reg)
                        for name, (info, reg) in populations.items()},
        "timeline": series.snapshot(),
        "marks": sorted(marks, key=lambda m: m["t"]),
        "sessions": {"started": int(c.get("sessions.started", 0)),
                     "completed": int(c.get("sessions.completed", 0)),
                     "failed": int(c.get("sessions.failed", 0)),
                     "stopped": int(c.get("sessions.stopped", 0)),
                     "errors": errors[:50]},
    }




def merge_usage(usages: list[Any], counters: dict[str, float]) -> dict[str, Any] | None:
    """The shards' ``usage`` sections as one: tokens from the merged counters, spend and
    budgets summed (each shard had its share of the budget), reached if any shard reached it."""
    present = [u for u in usages if isinstance(u, dict)]
    if not present:
        return None
    first = present[0]
    known = all(u.get("cost_known") for u in present)
    cost = sum(u.get("cost_usd") or 0.0 for u in present) if known else None
    budgets = [u["budget"] for u in present if u.get("budget")]
    budget = None
    if budgets:
        def total(key: str) -> float | None:
            values = [b.get(key) for b in budgets]
            return None if any(v is None for v in values) else round(sum(values), 6)
        reasons = [b.get("reason") for b in budgets if b.get("reached")]
        budget = {"max_cost_usd": total("max_cost_usd"), "max_session_minutes": total("max_session_minutes"),
                  "spent_usd": total("spent_usd"), "session_minutes": total("session_minutes"),
                  "reached": bool(reasons), "reason": reasons[0] if reasons else None,
                  "turns_refused": sum(b.get("turns_refused", 0) for b in budgets)}
    return {
        "tokens": {name: int(counters.get(f"usage.{name}", 0)) for name in first.get("tokens", {})},
        "live_active_seconds": counters.get("usage.live_active_seconds", 0),
        "cost_usd": None if cost is None else round(cost, 6),
        "cost_known": known,
        **per_unit_costs(cost, counters),
        "prices": first.get("prices"),
        "budget": budget,
    }
