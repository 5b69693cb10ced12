"""Spans and metrics of a real run arrive at a real OTLP/HTTP receiver on loopback.

The CLI runs in a subprocess (OpenTelemetry's global providers can be set once per process)
with the standard OTEL_* variables pointing at a receiver served here by hypercorn.
"""

import json
import os
import sys
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

ROOT = Path(__file__).resolve().parents[2]


class OtlpReceiver:
    """A minimal OTLP/HTTP (protobuf) collector: POST /v1/traces and /v1/metrics."""

    def __init__(self):
        self.spans = []
        self.metrics = set()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/v1/traces":
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scoped in resource.scope_spans:
                    self.spans.extend(scoped.spans)
        elif scope["path"] == "/v1/metrics":
            request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
            for resource in request.resource_metrics:
                for scoped in resource.scope_metrics:
                    self.metrics.update(m.name for m in scoped.metrics)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-protobuf")]})
        await send({"type": "http.response.body", "body": b""})


def _attrs(span):
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = v.string_value or v.int_value or v.double_value or v.bool_value
    return out


async def test_spans_and_metrics_reach_an_otlp_http_receiver_with_correct_parents():
    receiver = OtlpReceiver()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, receiver, config))
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
               "OTEL_EXPORTER_OTLP_ENDPOINT": binds[0], "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
               "OTEL_SERVICE_NAME": "rtfleet-test"}
        with trio.fail_after(60):
            done = await trio.run_process(
                [sys.executable, "-m", "orchestrator", "run", str(ROOT / "scenarios/smoke.yaml"), "--quiet"],
                env=env, capture_stdout=True, capture_stderr=True, check=False)
        nursery.cancel_scope.cancel()
    assert done.returncode == 0, done.stderr.decode()
    by_name = {}
    for span in receiver.spans:
        by_name.setdefault(span.name, []).append(span)
    sessions = by_name["rtfleet.session"]
    assert len(sessions) == 5
    session_ids = {s.span_id for s in sessions}
    trace_ids = {s.trace_id for s in sessions}
    turns = by_name["gen_ai.realtime.turn"]
    connects = by_name["rtfleet.connect"]
    assert len(turns) == 5 and len(connects) == 5
    for child in turns + connects:
        assert child.parent_span_id in session_ids and child.trace_id in trace_ids
    attrs = _attrs(sessions[0])
    assert attrs["gen_ai.operation.name"] == "realtime" and attrs["gen_ai.request.model"] == "gpt-realtime"
    assert attrs["gen_ai.conversation.id"].startswith("sess_")
    turn_attrs = _attrs(turns[0])
    assert turn_attrs["gen_ai.usage.total_tokens"] > 0 and turn_attrs["gen_ai.response.id"].startswith("resp_")
    assert {"rtfleet.turn.time_to_first_text", "rtfleet.reconnect.attempts",
            "rtfleet.sessions", "rtfleet.events.received"} <= receiver.metrics


async def test_trace_file_writes_linked_spans_as_json_lines(tmp_path):
    trace_file = tmp_path / "spans.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-m", "orchestrator", "run", str(ROOT / "scenarios/smoke.yaml"), "--quiet",
             "--trace-file", str(trace_file)], env=env, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    spans = [json.loads(line) for line in trace_file.read_text().splitlines()]
    sessions = {s["span_id"] for s in spans if s["name"] == "rtfleet.session"}
    assert len(sessions) == 5
    children = [s for s in spans if s["name"] in ("gen_ai.realtime.turn", "rtfleet.connect")]
    assert len(children) == 10 and all(c["parent_span_id"] in sessions for c in children)
