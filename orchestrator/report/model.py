"""What a report shows, read from a ``results.json`` dict (format 1) into typed values.

`RunReport.from_results` is the one place that knows the results layout. It is lenient about
absence (a run without reconnects has no ``reconnect.*`` metrics; an empty run has no
timeline slots) and strict about shape: a field of the wrong type, or metrics that the
`orchestrator.metrics` readers refuse, raise `ReportError` naming the field, e.g.
``results: thresholds[2].passed: expected true or false, got 'yes'``.

Exceptions::

    ReportError (ValueError)    results missing, unreadable, of another format or malformed
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from orchestrator.metrics import MetricsRegistry, TimeSeries

__all__ = ["ReportError", "RunReport", "ThresholdRow", "RunMark", "SessionError", "RESULTS_FORMAT"]

RESULTS_FORMAT = 1
#: a timeline longer than this (a week of seconds) is taken for corrupt data, not plotted
MAX_SLOTS = 7 * 24 * 3600


class ReportError(ValueError):
    """The results cannot be turned into a report; the message says which file or field."""


@attrs.frozen
class ThresholdRow:
    expression: str
    observed: float | None
    passed: bool
    reason: str


@attrs.frozen
class RunMark:
    """A point on the run's time axis: a phase start, an injected fault or an error."""

    t: float
    kind: str
    label: str


@attrs.frozen
class SessionError:
    session: str
    error: str
    #: the session's last events before the error (``+t what`` lines), when recorded
    trail: tuple[str, ...] = ()


@attrs.frozen
class RunReport:
    rtfleet_version: str
    scenario_name: str
    description: str
    scenario_file: str
    seed: int | None
    config: Any
    target: str
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    verdict: str
    thresholds: tuple[ThresholdRow, ...]
    metrics: MetricsRegistry
    timeline: TimeSeries
    marks: tuple[RunMark, ...]
    sessions_started: int | None
    sessions_completed: int | None
    sessions_failed: int | None
    sessions_stopped: int | None
    session_errors: tuple[SessionError, ...]
    #: results.json ``populations`` as plain data (name -> protocol, transport, summary)
    populations: Any = None
    #: results.json ``usage`` as plain data (tokens, cost, prices, budget); None before it existed
    usage: Any = None
    #: results.json ``rate_limits`` as plain data (limits seen, refusals, admission), or None
    rate_limits: Any = None
    #: results.json ``checks`` (expect steps: per population, step and check, the words said
    #: by failures) as plain data; empty when the run had no expect steps
    checks: Any = ()

    @classmethod
    def from_results(cls, results: Any) -> RunReport:
        r = _Reader(results, "results")
        fmt = r.get("format")
        if fmt != RESULTS_FORMAT:
            raise ReportError(
                f"results: unsupported results format {fmt!r} "
                f"(this rtfleet reads format {RESULTS_FORMAT})"
            )
        scenario = r.child("scenario")
        sessions = r.child("sessions")
        verdict = r.string("verdict", "")
        return cls(
            rtfleet_version=r.string("rtfleet_version", ""),
            scenario_name=scenario.string("name", "") or "(unnamed scenario)",
            description=scenario.string("description", ""),
            scenario_file=scenario.string("file", ""),
            seed=scenario.integer("seed"),
            config=scenario.get("config"),
            target=r.string("target", ""),
            started_at=r.number("started_at"),
            finished_at=r.number("finished_at"),
            duration_s=r.number("duration_s"),
            verdict=verdict.lower(),
            thresholds=tuple(_threshold(item) for item in r.items("thresholds")),
            metrics=_registry(r.child("metrics")),
            timeline=_timeline(r.child("timeline")),
            marks=tuple(sorted((_mark(item) for item in r.items("marks")), key=lambda m: m.t)),
            sessions_started=sessions.integer("started"),
            sessions_completed=sessions.integer("completed"),
            sessions_failed=sessions.integer("failed"),
            sessions_stopped=sessions.integer("stopped"),
            session_errors=tuple(
                SessionError(e.string("session", ""), e.string("error", ""), e.strings("trail"))
                for e in sessions.items("errors")
            ),
            populations=_populations(r.get("populations")),
            usage=r.get("usage") if isinstance(r.get("usage"), dict) else None,
            rate_limits=_mapping_or_none(r.get("rate_limits"), "results.rate_limits"),
            checks=tuple(c for c in r.get("checks") or () if isinstance(c, dict)),
        )

    @property
    def run_length(self) -> float:
        """Seconds the time axis covers: the run's duration, stretched to the last timeline
        slot and the last mark when those go further (at least one slot)."""
        end = self.duration_s if self.duration_s and math.isfinite(self.duration_s) else 0.0
        if self.timeline.slots:
            last = max(self.timeline.slots) + 1
            end = max(end, self.timeline.origin + last * self.timeline.interval)
        for mark in self.marks:
            end = max(end, mark.t)
        return max(end, self.timeline.interval)


class _Reader:
    """Typed access to one mapping of the results, naming ``path`` in every error."""

    def __init__(self, data: Any, path: str, *, optional: bool = False) -> None:
        if data is None and optional:
            data = {}
        if not isinstance(data, Mapping):
            raise ReportError(f"{path}: expected an object, got {_kind(data)}")
        self.data, self.path = data, path

    def _fail(self, key: str, expected: str, value: Any) -> ReportError:
        return ReportError(f"{self.path}.{key}: expected {expected}, got {_kind(value)}")

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def child(self, key: str) -> _Reader:
        return _Reader(self.data.get(key), f"{self.path}.{key}", optional=True)

    def items(self, key: str) -> list[_Reader]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(key, "a list", value)
        return [_Reader(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(value)]

    def string(self, key: str, default: str) -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings", value)
        return tuple(value)

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(key, "a number", value)
        return float(value)

    def integer(self, key: str) -> int | None:
        value = self.number(key)
        if value is None:
            return None
        if not value.is_integer():
            raise self._fail(key, "a whole number", self.data.get(key))
        return int(value)

    def boolean(self, key: str) -> bool:
        value = self.data.get(key)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:40])
    return type(value).__name__


def _populations(value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise ReportError(f"results.populations: expected an object of objects, got {_kind(value)}")
    return value


def _mapping_or_none(value: Any, path: str) -> Any:
    if value is not None and not isinstance(value, Mapping):
        raise ReportError(f"{path}: expected an object, got {_kind(value)}")
    return value


def _threshold(r: _Reader) -> ThresholdRow:
    return ThresholdRow(r.string("expression", ""), r.number("observed"), r.boolean("passed"),
                        r.string("reason", ""))


def _mark(r: _Reader) -> RunMark:
    t = r.number("t")
    if t is None or not math.isfinite(t):
        raise ReportError(f"{r.path}.t: expected a number of seconds, got {_kind(r.get('t'))}")
    return RunMark(t, r.string("kind", ""), r.string("label", ""))


def _registry(r: _Reader) -> MetricsRegistry:
    for key in ("counters", "gauges", "histograms"):
        value = r.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise ReportError(f"{r.path}.{key}: expected an object, got {_kind(value)}")
    try:
        return MetricsRegistry.from_snapshot(r.data)
    except (ValueError, TypeError, KeyError) as exc:
        raise ReportError(f"{r.path}: {_describe(exc)}") from exc


def _timeline(r: _Reader) -> TimeSeries:
    if not r.data:
        return TimeSeries()
    interval = r.number("interval")
    if interval is None or not interval > 0:
        raise ReportError(f"{r.path}.interval: expected seconds > 0, got {_kind(r.get('interval'))}")
    slots = r.get("slots") or []
    if not isinstance(slots, list):
        raise ReportError(f"{r.path}.slots: expected a list, got {_kind(slots)}")
    for i, slot in enumerate(slots):
        if not (isinstance(slot, list) and len(slot) == 2 and type(slot[0]) is int
                and isinstance(slot[1], Mapping)):
            raise ReportError(f"{r.path}.slots[{i}]: expected [slot index, metrics snapshot]")
    if slots and max(s[0] for s in slots) - min(s[0] for s in slots) >= MAX_SLOTS:
        raise ReportError(f"{r.path}.slots: spans more than {MAX_SLOTS:,} slots")
    snapshot = {"interval": interval, "origin": r.number("origin") or 0.0, "slots": slots}
    try:
        return TimeSeries.from_snapshot(snapshot)
    except (ValueError, TypeError, KeyError) as exc:
        raise ReportError(f"{r.path}: {_describe(exc)}") from exc


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc) or type(exc).__name__
