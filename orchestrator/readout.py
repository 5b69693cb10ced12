"""How a run's figures are written for people, in one place for the terminal summary
(`orchestrator.scenario.results`) and the report (`orchestrator.report`), so the two agree.

* `format_number`: three significant digits, no exponent for everyday sizes.
* `format_observed`: a threshold's observed value -- times in ms whatever the threshold's time
  unit (``p95 < 800ms`` and ``p99 < 1.5s`` of one metric read alike, as in the latency
  table), a ``%`` threshold's fraction in %, anything else as a number.
* `reconnect_outcomes` / `format_reconnects`: outages by how they ended, so that
  ``succeeded / attempts`` is never left to read as failures.
* `population_rows`: the per-population comparison (e.g. Realtime vs GPT-Live populations of
  one run): sessions, turns, reconnects and turn latencies, times in ms.

Plain functions over plain data; imports nothing from the rest of rtfleet.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["format_number", "format_observed", "format_in_unit", "threshold_unit",
           "reconnect_outcomes", "format_reconnects", "population_rows"]

_UNIT = re.compile(r"\d\s*(ms|s|%)\s*$")


def format_number(value: float) -> str:
    """``13.5818 -> "13.6"``, ``734.2 -> "734"``, ``0.5 -> "0.5"``, ``40.0 -> "40"``,
    ``12345.6 -> "12346"``, ``0.0135818 -> "0.0136"``."""
    if not math.isfinite(value):
        return str(value)
    if value == 0 or float(value).is_integer():
        return str(int(value))
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    if decimals > 9:
        return f"{value:.3g}"
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def threshold_unit(expression: str) -> str | None:
    """The unit written after a threshold's value (``ms``, ``s``, ``%``), if any."""
    match = _UNIT.search(expression)
    return match.group(1) if match else None


def format_in_unit(value: float | None, unit: str | None) -> str:
    if value is None:
        return "absent"
    if unit in ("ms", "s"):
        return f"{format_number(value * 1000)}ms"
    if unit == "%":
        return f"{format_number(value * 100)}%"
    return format_number(value)


def format_observed(expression: str, observed: float | None) -> str:
    """A threshold's observed value as the summary and the report show it."""
    return format_in_unit(observed, threshold_unit(expression))


def reconnect_outcomes(counters: Mapping[str, Any]) -> dict[str, int]:
    """Outages (``reconnect.attempts``) by how they ended: succeeded, failed (the session went
    to error), abandoned (the session ended while reconnecting: script done, or stopped), and
    open (still reconnecting when the counts were taken; 0 in a finished run)."""
    def get(name: str) -> int:
        return int(counters.get(name, 0))

    out = {"outages": get("reconnect.attempts"), "succeeded": get("reconnect.succeeded"),
           "failed": get("reconnect.failed"), "abandoned": get("reconnect.abandoned")}
    out["open"] = max(out["outages"] - out["succeeded"] - out["failed"] - out["abandoned"], 0)
    return out


def format_reconnects(counters: Mapping[str, Any]) -> str:
    """``"68 succeeded / 71 attempts (outages); 0 failed, 3 abandoned (session ended while
    reconnecting)"``."""
    r = reconnect_outcomes(counters)
    text = f"{r['succeeded']} succeeded / {r['outages']} attempts (outages)"
    if r["outages"]:
        text += f"; {r['failed']} failed"
        if r["abandoned"]:
            text += f", {r['abandoned']} abandoned (session ended while reconnecting)"
        if r["open"]:
            text += f", {r['open']} still reconnecting"
    return text


#: the latencies the per-population comparison shows: (histogram, column label)
_POPULATION_LATENCIES = (("turn.time_to_first_audio", "first audio"), ("turn.duration", "turn"))


def population_rows(populations: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows (strings) comparing a run's populations, from results.json's
    ``populations`` (each ``{"protocol", "transport", "summary": {"histograms", "counters"}}``)."""
    headers = ["population", "protocol", "transport", "sessions", "failed", "turns",
               "turns failed", "reconnected/outages"]
    for _, label in _POPULATION_LATENCIES:
        headers += [f"{label} p50 ms", f"{label} p95 ms"]
    rows = []
    for name, pop in populations.items():
        summary = pop.get("summary") or {}
        counters = summary.get("counters") or {}
        histograms = summary.get("histograms") or {}
        row = [name, str(pop.get("protocol", "")), str(pop.get("transport", ""))]
        row += [format_number(float(counters.get(key, 0))) for key in (
            "sessions.started", "sessions.failed", "turns.completed", "turns.failed")]
        outcomes = reconnect_outcomes(counters)
        row.append(f"{outcomes['succeeded']}/{outcomes['outages']}")
        for metric, _ in _POPULATION_LATENCIES:
            h = histograms.get(metric) or {}
            for q in ("p50", "p95"):
                value = h.get(q)
                row.append("-" if value is None else format_number(value * 1000))
        rows.append(row)
    return headers, rows
