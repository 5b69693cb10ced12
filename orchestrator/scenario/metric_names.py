"""The metrics a run records: one catalogue, read by the runner (which counters it declares at
the start), `runmetrics` (which it exports to OpenTelemetry) and the scenario model (which
threshold metrics a scenario may name, and with which statistics).

Pure data and two small functions; no trio, no OpenTelemetry, so the loader can import it.

::

    KNOWN["turn.time_to_first_text"].kind      # "histogram"
    metric_kind("server_errors.rate_limited")  # "counter" (a family: any code)
    threshold_problem("turn.time_to_first_byte", "p95")
    # "unknown metric 'turn.time_to_first_byte'; did you mean 'turn.time_to_first_text'?"
"""

from __future__ import annotations

import difflib

import attrs

__all__ = ["Metric", "KNOWN", "FAMILIES", "DECLARED", "metric_kind", "threshold_problem"]

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"


@attrs.frozen
class Metric:
    name: str
    kind: str
    doc: str


_CATALOGUE = (
    Metric("connect.duration", HISTOGRAM, "session added -> first connected (s)"),
    Metric("reconnect.duration", HISTOGRAM, "reconnecting -> connected (s)"),
    Metric("reconnect.attempts", COUNTER, "outages (transitions into reconnecting)"),
    Metric("reconnect.succeeded", COUNTER, "outages that ended connected"),
    Metric("reconnect.failed", COUNTER, "outages that ended with the session in error"),
    Metric("reconnect.abandoned", COUNTER, "outages cut short because the session itself ended"),
    Metric("reconnect.success_rate", GAUGE, "succeeded / (succeeded + failed); 1 when none ended"),
    Metric("turn.time_to_first_text", HISTOGRAM, "turn start -> first text or transcript delta"),
    Metric("turn.time_to_first_audio", HISTOGRAM, "turn start -> first output audio"),
    Metric("turn.duration", HISTOGRAM, "turn start -> response.done"),
    Metric("turns.completed", COUNTER, "turns answered (response.done)"),
    Metric("turns.failed", COUNTER, "turns that timed out"),
    Metric("turns.barged_in", COUNTER, "barge-ins that cancelled a live response"),
    Metric("turns.barge_in_missed", COUNTER, "barge-ins that met no live response"),
    Metric("turns.replayed", COUNTER, "audio turns in flight at a drop, re-sent on reconnect"),
    Metric("turns.lost", COUNTER, "audio turns in flight at a drop that could not be replayed"),
    Metric("tool.call", HISTOGRAM, "turn start -> the model's function call complete (output_item.done)"),
    Metric("tool.calls", COUNTER, "function calls the model made (completed function_call items)"),
    Metric("tool.calls_failed", COUNTER, "expect_tool_call steps that timed out or did not match"),
    Metric("transcription.latency", HISTOGRAM,
           "utterance committed (VAD speech end, or commit) -> its input transcript completed"),
    Metric("transcription.time_to_first_delta", HISTOGRAM,
           "utterance committed -> its first input transcript delta"),
    Metric("checks.passed", COUNTER, "expect checks (said, contains, tool, within) that held"),
    Metric("checks.failed", COUNTER, "expect checks that did not hold (results.json 'checks' has the words said)"),
    Metric("transcripts.completed", COUNTER, "input audio transcripts completed"),
    Metric("transcripts.failed", COUNTER, "input audio transcripts that failed (server .failed)"),
    Metric("transcripts.missed", COUNTER, "wait_transcript steps that timed out"),
    Metric("usage.input_text_tokens", COUNTER, "input text tokens the service reported (response.done usage)"),
    Metric("usage.input_audio_tokens", COUNTER, "input audio tokens reported"),
    Metric("usage.cached_text_tokens", COUNTER, "cached input text tokens (part of the input ones)"),
    Metric("usage.cached_audio_tokens", COUNTER, "cached input audio tokens (part of the input ones)"),
    Metric("usage.output_text_tokens", COUNTER, "output text tokens reported"),
    Metric("usage.output_audio_tokens", COUNTER, "output audio tokens reported"),
    Metric("usage.live_active_seconds", COUNTER, "GPT-Live active seconds (session.usage.updated)"),
    Metric("cost.usd", COUNTER, "spend at the price table's prices (USD); absent when the model has no price"),
    Metric("audio.frame_lateness", HISTOGRAM, "how late each 20 ms input chunk left (s)"),
    Metric("events.received", COUNTER, "server events"),
    Metric("errors", COUNTER, "protocol errors, server errors, failed turns and sessions"),
    Metric("errors.protocol", COUNTER, "events the client could not parse"),
    Metric("sessions.started", COUNTER, "sessions added"),
    Metric("sessions.completed", COUNTER, "sessions that ran their script to the end"),
    Metric("sessions.failed", COUNTER, "sessions that could not connect or whose step failed"),
    Metric("sessions.stopped", COUNTER, "sessions stopped by a phase end or duration_limit"),
    Metric("sessions.errored", COUNTER, "transitions of a session into the error state"),
    Metric("sessions.connecting", GAUGE, "sessions in that state at the end of each second"),
    Metric("sessions.connected", GAUGE, "sessions in that state at the end of each second"),
    Metric("sessions.reconnecting", GAUGE, "sessions in that state at the end of each second"),
    Metric("sessions.error", GAUGE, "sessions in that state at the end of each second"),
    Metric("faults.injected", COUNTER, "faults the scenario injected"),
    Metric("rate_limited.connections", COUNTER,
           "connections the service refused over a rate limit (rate_limit_exceeded before "
           "session.created, or HTTP 429 on connecting)"),
    Metric("rate_limited.responses", COUNTER,
           "rate_limit_exceeded errors in a connected session (a response refused)"),
    Metric("rate_limited.key_mints", COUNTER, "client-secret mints refused with HTTP 429"),
    Metric("admission.delayed", COUNTER, "sessions the rate-limit gate held before adding them"),
    Metric("admission.wait", HISTOGRAM, "how long each session the gate admitted waited (s)"),
    Metric("faults.dropped_connections", COUNTER, "connections a drop_connections fault cut"),
)
#: name -> metric, for every fixed name
KNOWN: dict[str, Metric] = {m.name: m for m in _CATALOGUE}
#: ``prefix.<anything>`` counters: server error codes, events dropped by category
FAMILIES: dict[str, str] = {
    "server_errors.": "server 'error' events by code (e.g. server_errors.rate_limited)",
    "dropped.": "events dropped by category (slow subscriber, audio queue, restore, turn)",
}
#: counters the runner declares at 0, so that thresholds on them see 0, not absent
DECLARED = ("errors", "sessions.started", "sessions.completed", "sessions.failed",
            "sessions.stopped", "turns.completed", "turns.failed", "turns.barged_in",
            "turns.barge_in_missed", "turns.replayed", "turns.lost", "tool.calls", "tool.calls_failed", "checks.passed", "checks.failed", "transcripts.completed",
            "transcripts.failed", "transcripts.missed", "reconnect.attempts", "reconnect.succeeded",
            "reconnect.failed", "events.received", "rate_limited.connections",
            "rate_limited.responses", "rate_limited.key_mints")


def metric_kind(name: str) -> str | None:
    """``"counter"``, ``"gauge"`` or ``"histogram"``; None for a name no run records."""
    metric = KNOWN.get(name)
    if metric is not None:
        return metric.kind
    for prefix in FAMILIES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return COUNTER
    return None


def threshold_problem(metric: str, stat: str | None) -> str | None:
    """Why a threshold on ``metric`` with ``stat`` can never be evaluated, or None if it can."""
    kind = metric_kind(metric)
    if kind is None:
        close = difflib.get_close_matches(metric, list(KNOWN), n=1, cutoff=0.6)
        if close:
            return f"unknown metric {metric!r}, did you mean {close[0]!r}?"
        families = ", ".join(f"{p}<name>" for p in FAMILIES)
        return (f"unknown metric {metric!r} (known: {', '.join(sorted(KNOWN))}, "
                f"and {families})")
    if kind == HISTOGRAM and stat is None:
        return f"{metric!r} is a histogram; give a statistic such as p95 or count"
    if kind != HISTOGRAM and stat is not None and not (kind == COUNTER and stat in ("count", "rate")):
        return f"{stat} applies to histograms; {metric!r} is a {kind}"
    return None
