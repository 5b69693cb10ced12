"""The results of a run: ``results.json`` (format 1), the printed summary, and the report.

The run configuration is stored with secrets redacted: any value under a key that looks like
a credential, and any string that looks like a key (``sk-…``, ``ek_…``), becomes
``[redacted]``.  Histograms are stored whole (mergeable), not only their percentiles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from orchestrator.scenario.model import Scenario
from orchestrator.scenario.runmetrics import RunMetrics
from orchestrator.metrics import MetricsRegistry
from orchestrator.readout import population_rows, format_observed, format_reconnects
from orchestrator.scenario.thresholds import ThresholdResult
from orchestrator.scenario.unstructure import unstructure_scenario

from orchestrator.usage import format_usage

__all__ = ["build_results", "write_results", "format_summary", "redact_config", "redact_text"]

FORMAT = 1
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|token|password|authorization)", re.I)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6,}|ek_[A-Za-z0-9_\-]{6,})")


def redact_text(text: str) -> str:
    """``text`` with every string that looks like a key (``sk-…``, ``ek_…``) redacted."""
    return _SECRET_VALUE.sub("[redacted]", text)


def redact_config(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: redact_config(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_config(v, key) for v in value]
    if isinstance(value, str):
        if _SECRET_KEY.search(key) and not key.endswith("_env"):
            return "[redacted]"
        return _SECRET_VALUE.sub("[redacted]", value)
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rtfleet")
    except PackageNotFoundError:  # pragma: no cover
        return "0+unknown"


def build_results(
    scenario: Scenario,
    *,
    file: str,
    target: str,
    seed: int,
    started: float,
    elapsed: float,
    metrics: RunMetrics,
    thresholds: Sequence[ThresholdResult],
    marks: list[dict[str, Any]],
    errors: list[dict[str, str]],
    interrupted: bool = False,
    running: bool = False,
    spend: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``results.json`` data; ``running``: the results so far of a run still going (the
    live page's), ``"verdict": "running"`` and no ``finished_at``."""
    registry = metrics.registry
    try:
        config = redact_config(unstructure_scenario(scenario, effective=True))
    except Exception:  # never lose a run's results over its config dump
        config = {}
    c = registry.counters
    return {
        "format": FORMAT,
        "rtfleet_version": _version(),
        "scenario": {"name": redact_text(scenario.name), "description": redact_text(scenario.description), "file": file,
                     "seed": seed, "config": config},
        "target": _SECRET_VALUE.sub("[redacted]", target),
        "started_at": started,
        "finished_at": None if running else started + elapsed,
        "duration_s": elapsed,
        "verdict": ("running" if running else "interrupted" if interrupted
                    else "pass" if all(r.passed for r in thresholds) else "fail"),
        "interrupted": interrupted,
        "thresholds": [
            {"expression": r.threshold.source_text, "observed": r.observed, "passed": r.passed,
             "reason": r.reason}
            for r in thresholds
        ],
        "usage": spend,
        "metrics": registry.snapshot(),
        "summary": {
            "histograms": {name: h.summary() for name, h in sorted(registry.histograms.items())},
            "counters": dict(sorted(registry.counters.items())),
            "gauges": dict(sorted(registry.gauges.items())),
        },
        "populations": {name: population_section(metrics.population_info[name], reg)
                        for name, reg in metrics.by_population.items()},
        "timeline": metrics.series.snapshot(),
        "marks": marks,
        "sessions": {"started": int(c.get("sessions.started", 0)),
                     "completed": int(c.get("sessions.completed", 0)),
                     "failed": int(c.get("sessions.failed", 0)),
                     "stopped": int(c.get("sessions.stopped", 0)),
                     "errors": errors},
    }


def population_section(info: dict[str, str], registry: MetricsRegistry) -> dict[str, Any]:
    """One population in results.json: its protocol and transport, its summary, and its
    registry's snapshot (what shards merge)."""
    return {**info, "summary": {
        "histograms": {h: v.summary() for h, v in sorted(registry.histograms.items())},
        "counters": dict(sorted(registry.counters.items()))}, "metrics": registry.snapshot()}


def write_results(out: Path, results: dict[str, Any]) -> list[Path]:
    """Write ``results.json`` and, when the report package is present, ``report.html``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=False, default=str) + "\n")
    written = [path]
    try:
        from orchestrator.report import write_report
    except ImportError:  # pragma: no cover - the report package ships with rtfleet
        return written
    written.append(write_report(out, results))
    return written


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}ms"


def format_summary(results: dict[str, Any]) -> str:
    """A plain-text summary (the CLI prints it; no colours, so it reads the same in CI logs)."""
    s = results["sessions"]
    counters = results["summary"]["counters"]
    lines = [
        f"scenario {results['scenario']['name']!r} against {results['target']}: "
        f"{results['verdict'].upper()} in {results['duration_s']:.1f}s",
        f"sessions: {s['started']} started, {s['completed']} completed, {s['failed']} failed, "
        f"{s['stopped']} stopped; turns: {int(counters.get('turns.completed', 0))} completed, "
        f"{int(counters.get('turns.failed', 0))} failed; errors: {int(counters.get('errors', 0))}; "
        f"reconnects: {format_reconnects(counters)}",
    ]
    usage_line = format_usage(results.get("usage"))
    if usage_line:
        lines.append(usage_line)
    histograms = results["summary"]["histograms"]
    if histograms:
        width = max(28, *(len(name) for name in histograms))
        lines.append(f"{'metric':{width}} {'count':>7} {'p50':>8} {'p90':>8} {'p95':>8} {'p99':>8} {'max':>8}")
        for name, h in histograms.items():
            lines.append(f"{name:{width}} {h['count']:>7} {_ms(h['p50']):>8} {_ms(h['p90']):>8} "
                         f"{_ms(h['p95']):>8} {_ms(h['p99']):>8} {_ms(h['max']):>8}")
    populations = results.get("populations") or {}
    if len(populations) > 1:
        headers, rows = population_rows(populations)
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        lines.append("by population:")
        for row in [headers, *rows]:
            lines.append("  " + "  ".join(cell.rjust(w) if i > 2 else cell.ljust(w)
                                          for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    for t in results["thresholds"]:
        observed = format_observed(t["expression"], t["observed"])
        mark = "ok  " if t["passed"] else "FAIL"
        reason = f"  ({t['reason']})" if t["reason"] and not t["passed"] else ""
        lines.append(f"  {mark} {t['expression']}  [observed {observed}]{reason}")
    for error in s["errors"][:5]:
        lines.append(f"  error in {error['session']}: {error['error']}")
    return "\n".join(lines)
