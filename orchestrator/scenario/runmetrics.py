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

Per population: what a session's driver and its outcome record goes through
:meth:`RunMetrics.labelled` (the population's name, protocol and transport), into the whole-run
registry *and* the population's own (:attr:`RunMetrics.by_population`; results.json
``populations``, the report's "By population" table that compares, e.g., Realtime and GPT-Live
populations of one run), and the OpenTelemetry instruments get ``rtfleet.population``,
``rtfleet.protocol`` and ``rtfleet.transport`` attributes.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from orchestrator.metrics import MetricsRegistry, TimeSeries
from orchestrator.scenario.metric_names import KNOWN
from orchestrator.telemetry import meter

#: metrics also exported as OpenTelemetry instruments (``rtfleet.<name>``; live over
#: Prometheus with ``--metrics-port``); histograms in seconds
OTEL_COUNTERS = frozenset({
    "reconnect.attempts", "reconnect.succeeded", "reconnect.failed", "reconnect.abandoned",
    "turns.completed", "turns.failed", "turns.barged_in", "turns.barge_in_missed",
    "turns.replayed", "turns.lost", "tool.calls", "tool.calls_failed", "transcripts.completed",
    "transcripts.failed", "transcripts.missed", "errors", "errors.protocol", "events.received",
    "sessions.started", "sessions.completed", "sessions.failed", "sessions.stopped",
    "sessions.errored", "faults.injected", "faults.dropped_connections",
    "usage.input_text_tokens", "usage.input_audio_tokens", "usage.cached_text_tokens",
    "usage.cached_audio_tokens", "usage.output_text_tokens", "usage.output_audio_tokens",
    "usage.live_active_seconds", "cost.usd"})
OTEL_HISTOGRAMS = frozenset({"turn.time_to_first_text", "turn.time_to_first_audio",
                             "turn.duration", "connect.duration", "reconnect.duration",
                             "audio.frame_lateness", "tool.call", "transcription.latency",
                             "transcription.time_to_first_delta"})
#: counter families: ``prefix.<x>`` is the counter ``rtfleet.<prefix>`` with ``<x>`` as this
#: attribute (one series a category, not a metric name a code)
OTEL_FAMILIES = {"dropped.": ("dropped", "rtfleet.dropped.category"),
                 "server_errors.": ("server_errors", "error.type")}
#: the live session states, as one gauge ``rtfleet.sessions`` with this attribute
STATE_ATTRIBUTE = "rtfleet.session.state"

__all__ = ["LabelledMetrics", "RunMetrics"]


@attrs.define
class RunMetrics:
    clock: Callable[[], float]
    origin: float
    registry: MetricsRegistry = attrs.field(factory=MetricsRegistry)
    series: TimeSeries = attrs.field()

    #: per population: its registry, and its {"protocol", "transport"}
    by_population: dict[str, MetricsRegistry] = attrs.field(factory=dict, init=False)
    population_info: dict[str, dict[str, str]] = attrs.field(factory=dict, init=False)
    _otel: dict[str, Any] = attrs.field(factory=dict, init=False)

    @series.default
    def _series(self) -> TimeSeries:
        return TimeSeries(interval=1.0, origin=0.0)

    def _instrument(self, kind: str, name: str) -> Any:
        instrument = self._otel.get(name)
        if instrument is None:
            m = meter()
            full = f"rtfleet.{name}"
            doc = KNOWN[name].doc if name in KNOWN else ""
            if kind == "counter":
                instrument = m.create_counter(full, description=doc)
            elif kind == "histogram":
                instrument = m.create_histogram(full, unit="s", description=doc)
            else:
                instrument = m.create_gauge(full, description="sessions in each live state")
            self._otel[name] = instrument
        return instrument

    def elapsed(self) -> float:
        return self.clock() - self.origin

    def inc(self, name: str, amount: float = 1, *, population: str | None = None) -> None:
        self.registry.inc(name, amount)
        self.series.inc(name, self.elapsed(), amount)
        if population is not None:
            self.by_population[population].inc(name, amount)
        if name in OTEL_COUNTERS:
            self._instrument("counter", name).add(amount, self._attributes(population))
        elif name.startswith(("dropped.", "server_errors.")):
            prefix = name[: name.index(".") + 1]
            family, key = OTEL_FAMILIES[prefix]
            attributes = dict(self._attributes(population) or {})
            attributes[key] = name[len(prefix):]
            self._instrument("counter", family).add(amount, attributes)

    def observe(self, name: str, value: float, *, population: str | None = None) -> None:
        if value < 0:
            value = 0.0
        self.registry.observe(name, value)
        self.series.observe(name, value, self.elapsed())
        if population is not None:
            self.by_population[population].observe(name, value)
        if name in OTEL_HISTOGRAMS:
            self._instrument("histogram", name).record(value, self._attributes(population))

    def labelled(self, population: str, *, protocol: str, transport: str) -> LabelledMetrics:
        """The metrics as one population's sessions record them (see the module docstring)."""
        if population not in self.by_population:
            self.by_population[population] = MetricsRegistry()
            self.population_info[population] = {"protocol": protocol, "transport": transport}
        return LabelledMetrics(self, population)

    def _attributes(self, population: str | None) -> dict[str, str] | None:
        if population is None:
            return None
        info = self.population_info[population]
        return {"rtfleet.population": population, "rtfleet.protocol": info["protocol"],
                "rtfleet.transport": info["transport"]}

    def gauge(self, name: str, value: float, *, series: bool = True,
              at: float | None = None) -> None:
        """Set a gauge; its time series slot is the one holding ``at`` (run seconds), by
        default now."""
        self.registry.set_gauge(name, value)
        if series:
            self.series.set_gauge(name, value, self.elapsed() if at is None else at)
        if name.startswith("sessions."):  # sessions by state
            self._instrument("gauge", "sessions").set(value, {STATE_ATTRIBUTE: name[9:]})

    def counter(self, name: str) -> float:
        return float(self.registry.counters.get(name, 0))


@attrs.frozen
class LabelledMetrics:
    """:class:`RunMetrics` as one population records into it (same methods as a driver uses)."""

    run: RunMetrics
    population: str

    def clock(self) -> float:
        return self.run.clock()

    def elapsed(self) -> float:
        return self.run.elapsed()

    def inc(self, name: str, amount: float = 1) -> None:
        self.run.inc(name, amount, population=self.population)

    def observe(self, name: str, value: float) -> None:
        self.run.observe(name, value, population=self.population)
