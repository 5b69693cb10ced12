"""What a run measures, fed from the fleet's event stream.

:class:`RunMetrics` writes every observation twice: into a whole-run
:class:`~orchestrator.metrics.MetricsRegistry` (for thresholds and the summary) and into a
per-second :class:`~orchestrator.metrics.TimeSeries` (for "over time" plots).  Times are
seconds on the trio clock, relative to the run start.

Metric names (histograms in seconds; the catalogue that thresholds are checked against is
`orchestrator.scenario.metric_names`, keep the two in step):

=============================  ===========================================================
``connect.duration``           session added -> first ``connected``
``reconnect.duration``         ``reconnecting`` -> ``connected``
``reconnect.attempts``         outages (transitions into ``reconnecting``)
``reconnect.succeeded``        outages that ended ``connected``
``reconnect.failed``           outages that ended with the session in ``error``
``reconnect.abandoned``        outages cut short because the session itself ended
``reconnect.success_rate``     gauge: succeeded / (succeeded + failed); 1 when none ended
``turn.time_to_first_text``    turn start -> first text or transcript delta
``turn.time_to_first_audio``   turn start -> first ``response.output_audio.delta``
``turn.duration``              turn start -> ``response.done``
``turns.completed``/``failed`` turns answered / timed out
``turns.barged_in``            barge-ins that cancelled a live response
``turns.barge_in_missed``      barge-ins that met no live response (it ended first)
``audio.frame_lateness``       how late each 20 ms input chunk left, against its schedule
``events.received``            server events (``events.received rate`` = events/s)
``errors``                     protocol errors + server ``error`` events + failed turns
                               + failed sessions
``sessions.started/completed/failed/stopped``
``sessions.<state>``           gauges of the live states (connecting, connected, reconnecting,
                               error), sampled at the end of every second and of the run
=============================  ===========================================================
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from orchestrator.metrics import MetricsRegistry, TimeSeries
from orchestrator.telemetry import meter

#: metrics also exported as OpenTelemetry instruments (``rtfleet.<name>``); histograms in s
OTEL_COUNTERS = frozenset({"reconnect.attempts", "reconnect.succeeded", "reconnect.failed",
                           "turns.completed", "turns.failed", "errors", "sessions.started",
                           "sessions.completed", "sessions.failed", "faults.injected"})
OTEL_HISTOGRAMS = frozenset({"turn.time_to_first_text", "turn.time_to_first_audio",
                             "turn.duration", "connect.duration", "reconnect.duration"})

__all__ = ["RunMetrics"]


@attrs.define
class RunMetrics:
    clock: Callable[[], float]
    origin: float
    registry: MetricsRegistry = attrs.field(factory=MetricsRegistry)
    series: TimeSeries = attrs.field()

    _otel: dict[str, Any] = attrs.field(factory=dict, init=False)

    @series.default
    def _series(self) -> TimeSeries:
        return TimeSeries(interval=1.0, origin=0.0)

    def _instrument(self, kind: str, name: str) -> Any:
        instrument = self._otel.get(name)
        if instrument is None:
            m = meter()
            full = f"rtfleet.{name}"
            if kind == "counter":
                instrument = m.create_counter(full)
            elif kind == "histogram":
                instrument = m.create_histogram(full, unit="s")
            else:
                instrument = m.create_gauge(full)
            self._otel[name] = instrument
        return instrument

    def elapsed(self) -> float:
        return self.clock() - self.origin

    def inc(self, name: str, amount: float = 1) -> None:
        self.registry.inc(name, amount)
        self.series.inc(name, self.elapsed(), amount)
        if name in OTEL_COUNTERS:
            self._instrument("counter", name).add(amount)

    def observe(self, name: str, value: float) -> None:
        if value < 0:
            value = 0.0
        self.registry.observe(name, value)
        self.series.observe(name, value, self.elapsed())
        if name in OTEL_HISTOGRAMS:
            self._instrument("histogram", name).record(value)

    def gauge(self, name: str, value: float, *, series: bool = True,
              at: float | None = None) -> None:
        """Set a gauge; its time series slot is the one holding ``at`` (run seconds), by
        default now."""
        self.registry.set_gauge(name, value)
        if series:
            self.series.set_gauge(name, value, self.elapsed() if at is None else at)
        if name.startswith("sessions."):  # sessions by state
            self._instrument("gauge", name).set(value)

    def counter(self, name: str) -> float:
        return float(self.registry.counters.get(name, 0))
