"""OpenTelemetry set-up and the one span helper the rest of rtfleet uses.

``setup_telemetry()`` reads the standard variables:

* ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: ``none`` (default), ``console``,
  ``otlp`` (needs the ``rtfleet[otlp]`` extra; ``OTEL_EXPORTER_OTLP_PROTOCOL`` =
  ``http/protobuf`` (default) or ``grpc``, endpoint from ``OTEL_EXPORTER_OTLP_ENDPOINT``);
* ``OTEL_SERVICE_NAME`` (default ``rtfleet``), ``OTEL_RESOURCE_ATTRIBUTES``;

and ``trace_file=`` adds a JSON-lines span exporter for offline use (``--trace-file``);
``metrics_endpoint=`` (an :class:`~orchestrator.metrics_endpoint.MetricsEndpoint`,
``--metrics-port``) adds a Prometheus reader whatever ``OTEL_METRICS_EXPORTER`` says.
Histograms get :data:`~orchestrator.metrics_endpoint.BUCKETS` (seconds) with every exporter.

When nothing is configured the global no-op tracer is used and :func:`span` costs one
function call.  Spans never carry secrets: attribute values pass through :func:`safe`.

Trio notes: child tasks inherit the current span (contextvars are copied at
``start_soon``), so open a span *before* starting children; never hold a current span across
a ``yield`` of an async generator; pass ``parent=`` explicitly when in doubt.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode

__all__ = ["setup_telemetry", "span", "tracer", "meter", "JsonLinesSpanExporter", "Telemetry"]

_NAME = "rtfleet"


def tracer() -> trace.Tracer:
    return trace.get_tracer(_NAME)


def meter() -> metrics.Meter:
    return metrics.get_meter(_NAME)


def safe(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        if isinstance(value, str) and (value.startswith("sk-") or value.startswith("ek_")):
            return "[redacted]"
        return value
    return str(value)


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: Span | None = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A span that records failure (status + exception event) and always ends."""
    ctx = trace.set_span_in_context(parent) if parent is not None else None
    attrs = {k: safe(v) for k, v in attributes.items()} if attributes else None
    with tracer().start_as_current_span(
        name, context=ctx, kind=kind, attributes=attrs, record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            current.record_exception(exc)
            raise


def start_span(name: str, attributes: Mapping[str, Any] | None = None, *, parent: Span | None = None) -> Span:
    """A span that is not made current: for long-lived spans ended by hand."""
    ctx = trace.set_span_in_context(parent) if parent is not None else otel_context.get_current()
    attrs = {k: safe(v) for k, v in attributes.items()} if attributes else None
    return tracer().start_span(name, context=ctx, attributes=attrs)


class JsonLinesSpanExporter:
    """Writes each finished span as one JSON object per line (OTLP-like field names)."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        for s in spans:
            ctx = s.get_span_context()
            parent = s.parent
            record = {
                "name": s.name,
                "trace_id": f"{ctx.trace_id:032x}",
                "span_id": f"{ctx.span_id:016x}",
                "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
                "start_unix_nano": s.start_time,
                "end_unix_nano": s.end_time,
                "status": s.status.status_code.name,
                "attributes": dict(s.attributes or {}),
                "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in s.events],
            }
            self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._file.flush()
        return True


class Telemetry:
    """What ``setup_telemetry`` installed; ``shutdown()`` flushes and detaches it."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None):
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    def shutdown(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def setup_telemetry(*, trace_file: str | None = None, environ: Mapping[str, str] | None = None,
                    metrics_endpoint: Any = None) -> Telemetry:
    """Install SDK providers as the OTEL_* variables ask; returns a handle to shut them down."""
    env = os.environ if environ is None else environ
    traces = env.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    metric_exp = env.get("OTEL_METRICS_EXPORTER", "none").strip().lower()
    if traces == "none" and metric_exp == "none" and not trace_file and metrics_endpoint is None:
        return Telemetry()
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", _NAME)})
    tp = mp = None
    if traces != "none" or trace_file:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        tp = TracerProvider(resource=resource)
        for name in [t for t in traces.split(",") if t and t != "none"]:
            tp.add_span_processor(BatchSpanProcessor(_span_exporter(name, env)))
        if trace_file:
            tp.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file)))  # type: ignore[arg-type]
        trace.set_tracer_provider(tp)
    if metric_exp != "none" or metrics_endpoint is not None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        from orchestrator.metrics_endpoint import histogram_views

        readers = [PeriodicExportingMetricReader(_metric_exporter(n, env))
                   for n in metric_exp.split(",") if n and n != "none"]
        if metrics_endpoint is not None:
            readers.append(metrics_endpoint.reader())
        mp = MeterProvider(resource=resource, metric_readers=readers, views=histogram_views())
        metrics.set_meter_provider(mp)
    return Telemetry(tp, mp)


def _otlp_protocol(env: Mapping[str, str], signal: str) -> str:
    return env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))


def _span_exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        try:
            if _otlp_protocol(env, "TRACES") == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ValueError("OTEL_TRACES_EXPORTER=otlp needs: pip install 'rtfleet[otlp]'") from None
        return OTLPSpanExporter()
    raise ValueError(f"unknown OTEL_TRACES_EXPORTER {name!r} (use none, console or otlp)")


def _metric_exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    if name == "otlp":
        try:
            if _otlp_protocol(env, "METRICS") == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
            else:
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        except ImportError:
            raise ValueError("OTEL_METRICS_EXPORTER=otlp needs: pip install 'rtfleet[otlp]'") from None
        return OTLPMetricExporter()
    raise ValueError(f"unknown OTEL_METRICS_EXPORTER {name!r} (use none, console or otlp)")
