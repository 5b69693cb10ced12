"""The report's plots: a `RunReport`'s metrics and timeline turned into `Figure`s (inline SVG).

Plot names (the ``data-plot`` attribute of each figure)::

    sessions                 sessions by state over time (stacked levels)
    events                   reconnect attempts/successes, errors and faults per second,
                             with phase, fault and error marks
    throughput               turns completed per second
    percentiles:<metric>     p50/p95/p99 per second, for each turn latency with samples
                             (turn.duration, empty, when there is none)
    histogram:<metric>       distribution on a log axis, for each histogram with samples

All time plots share one time axis (seconds since the run started) and show the phase and
fault marks, so that a latency spike lines up with the fault that caused it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

from orchestrator.metrics import LOWEST, OVERFLOW, UNDERFLOW, Histogram, bucket_bounds

from . import svg
from .model import RunMark, RunReport

__all__ = ["Figure", "LegendItem", "time_figures", "histogram_figures", "histogram_bars",
           "TURN_LATENCIES", "HISTOGRAM_ORDER", "ordered_histograms"]

TURN_LATENCIES = ("turn.time_to_first_text", "turn.time_to_first_audio", "turn.duration")
#: histograms the runner records, in the order the report shows them; others follow by name
HISTOGRAM_ORDER = TURN_LATENCIES + ("connect.duration", "reconnect.duration", "audio.frame_lateness")

PERCENTILES = (("p50", 50, "#2563eb"), ("p95", 95, "#ea580c"), ("p99", 99, "#dc2626"))
#: p99 drawn first and widest, so that where percentiles coincide (few samples in a second)
#: each line still shows as an outline around the next
PERCENTILE_WIDTHS = {"p99": 3.4, "p95": 2.2, "p50": 1.6}
#: live states, stacked (each slot: the count at the end of that second, the last slot at the
#: end of the run); sessions that ended only add up, so they are a line over the bands
STATES = (
    ("connected", "#16a34a"),
    ("connecting", "#60a5fa"),
    ("reconnecting", "#f59e0b"),
    ("error", "#dc2626"),
)
#: "ended": cumulative sessions completed + failed + stopped, the summary's three outcomes
ENDED = ("ended", "#78716c")
ENDED_COUNTERS = ("sessions.completed", "sessions.failed", "sessions.stopped")
ENDED_LABEL = "ended so far (completed + failed + stopped; not stacked)"
#: a latency line is drawn through up to this many seconds without samples (turns in
#: lockstep leave every other second empty); a longer gap (an outage) breaks it
BRIDGE_SLOTS = 4
EVENT_SERIES = (
    ("reconnect.attempts", "reconnect attempts", "#f59e0b", ""),
    ("reconnect.succeeded", "reconnects succeeded", "#16a34a", ""),
    ("errors", "errors", "#dc2626", ""),
)  # faults are the marks (one line each, labelled), not a series: one legend entry
MARK_STYLES = {  # kind: (color, dash, stroke width, opacity, labelled)
    "phase": ("#1d4ed8", "6 4", 1.4, 0.8, True),
    "fault": ("#7c3aed", "", 1.6, 0.85, True),
    "error": ("#dc2626", "", 1.2, 0.6, False),  # a short tick at the top: errors come in bursts
    "budget": ("#b91c1c", "", 2.0, 0.9, True),  # where the run stopped at its budget
}
OTHER_MARK = ("#6b7280", "2 2", 1.0, 0.6, True)
ERROR_TICK = 12.0
TIME_AXIS = "time since start (s)"


@attrs.frozen
class LegendItem:
    label: str
    color: str
    style: str = "box"  # box | line | dash


@attrs.frozen
class Figure:
    name: str
    title: str
    svg: str
    legend: tuple[LegendItem, ...] = ()
    note: str = ""


def ordered_histograms(names: Sequence[str]) -> list[str]:
    known = [n for n in HISTOGRAM_ORDER if n in names]
    return known + sorted(n for n in names if n not in HISTOGRAM_ORDER)


# ---------------------------------------------------------------------------- over time


def _vmarks(marks: Sequence[RunMark], *, errors: bool) -> list[svg.VMark]:
    out = []
    for mark in marks:
        if mark.kind == "error" and not errors:
            continue
        color, dash, width, opacity, labelled = MARK_STYLES.get(mark.kind, OTHER_MARK)
        tooltip = f"{mark.t:.1f} s \u00b7 {mark.kind or 'mark'} \u00b7 {mark.label}"
        out.append(svg.VMark(mark.t, mark.label if labelled else "", tooltip, color, dash,
                             width, opacity, ERROR_TICK if mark.kind == "error" else 0.0))
    return out


def _mark_legend(marks: Sequence[RunMark], *, errors: bool) -> list[LegendItem]:
    kinds = {m.kind for m in marks}
    items = []
    for kind, label in (("phase", "phase start"), ("fault", "fault injected"),
                        ("error", "error"), ("budget", "budget reached")):
        if kind in kinds and (errors or kind != "error"):
            color, dash = MARK_STYLES[kind][:2]
            items.append(LegendItem(label, color, "dash" if dash else "line"))
    return items


def _slot_times(report: RunReport) -> list[tuple[int, float]]:
    ts = report.timeline
    if not ts.slots:
        return []
    return [(i, ts.origin + i * ts.interval) for i in range(min(ts.slots), max(ts.slots) + 1)
            if ts.origin + i * ts.interval >= 0]


def _counter_rate(report: RunReport, name: str) -> list[tuple[float, float | None]]:
    ts = report.timeline
    points: list[tuple[float, float | None]] = []
    for i, t in _slot_times(report):
        registry = ts.slots.get(i)
        count = registry.counters.get(name, 0) if registry is not None else 0
        points.append((t + ts.interval / 2, count / ts.interval))
    return points


def _has_counter(report: RunReport, name: str) -> bool:
    return name in report.metrics.counters or any(
        name in r.counters for r in report.timeline.slots.values())


def _has_samples(report: RunReport, name: str) -> bool:
    h = report.metrics.histograms.get(name)
    return bool(h and h.count) or any(
        r.histograms[name].count for r in report.timeline.slots.values() if name in r.histograms)


def _gauge_levels(report: RunReport, name: str) -> list[float]:
    """The gauge's level in every slot; a slot that does not set it keeps the last level."""
    level, out = 0.0, []
    for i, _ in _slot_times(report):
        registry = report.timeline.slots.get(i)
        if registry is not None and name in registry.gauges:
            value = float(registry.gauges[name])
            level = value if math.isfinite(value) and value >= 0 else level
        out.append(level)
    return out


def _cumulative(report: RunReport, names: Sequence[str]) -> list[float]:
    """The running total of ``names``' counters at the end of every slot."""
    total, out = 0.0, []
    for i, _ in _slot_times(report):
        registry = report.timeline.slots.get(i)
        if registry is not None:
            total += sum(registry.counters.get(name, 0) for name in names)
        out.append(total)
    return out


def _percentile_points(report: RunReport, name: str, q: float) -> list[tuple[float, float | None]]:
    ts = report.timeline
    points: list[tuple[float, float | None]] = []
    for i, t in _slot_times(report):
        registry = ts.slots.get(i)
        h = registry.histograms.get(name) if registry is not None else None
        value = h.percentile(q) if h is not None else None
        points.append((t + ts.interval / 2, None if value is None else value * 1000))
    return points


def time_figures(report: RunReport) -> list[Figure]:
    x_max = report.run_length
    interval = report.timeline.interval
    marks = _vmarks(report.marks, errors=False)
    mark_legend = _mark_legend(report.marks, errors=False)
    figures = []

    slots = _slot_times(report)
    layers = [svg.Layer(state, color, _gauge_levels(report, f"sessions.{state}"))
              for state, color in STATES]
    ended_levels = _cumulative(report, ENDED_COUNTERS)
    closed = [svg.Line(ENDED[0], ENDED[1], [
        point for (_, t), level in zip(slots, ended_levels)
        for point in ((t, level), (t + interval, level))
    ], dash="5 3", width=1.8)] if any(ended_levels) else []
    figures.append(Figure(
        "sessions", "Sessions by state",
        svg.stacked_steps_chart("Sessions by state", layers, lines=closed,
                                origin=slots[0][1] if slots else 0.0, interval=interval,
                                x_max=x_max, x_label=TIME_AXIS, y_label="sessions", marks=marks),
        tuple(LegendItem(state, color) for state, color in STATES)
        + ((LegendItem(ENDED_LABEL, ENDED[1], "dash"),) if closed else ()) + tuple(mark_legend),
        note="sessions in each state at the end of each second (the last: at the end of the "
             "run); an outage shorter than that shows in the reconnects plot",
    ))

    if _has_counter(report, "cost.usd"):
        spent = _cumulative(report, ("cost.usd",))
        spend = [svg.Line("spend (USD)", "#0f766e", [
            point for (_, t), level in zip(slots, spent) for point in ((t, level), (t + interval, level))])]
        limit = ((report.usage or {}).get("budget") or {}).get("max_cost_usd")
        if limit is not None and slots:
            spend.append(svg.Line(f"budget {limit:g} USD", "#b91c1c", [(0.0, limit), (x_max, limit)], "6 4"))
        figures.append(Figure(
            "spend", "Spend over time",
            svg.line_chart("Spend over time (cumulative USD)", spend, x_max=x_max, x_label=TIME_AXIS,
                           y_label="USD", marks=marks, empty_message="nothing spent"),
            tuple(LegendItem(line.name, line.color, "dash" if line.dash else "line") for line in spend)
            + tuple(mark_legend),
            note="cumulative spend at the price table's prices, beside sessions by state; a "
                 "budget mark shows where the run stopped",
        ))

    lines = [svg.Line(label, color, _counter_rate(report, name), dash)
             for name, label, color, dash in EVENT_SERIES if _has_counter(report, name)]
    event_marks = _vmarks(report.marks, errors=True)
    figures.append(Figure(
        "events", "Reconnects, errors and faults",
        svg.line_chart("Reconnects, errors and faults per second", lines, x_max=x_max,
                       x_label=TIME_AXIS, y_label="per second", marks=event_marks,
                       integer_y=interval == 1, empty_message="no reconnects, errors or faults"),
        tuple(LegendItem(line.name, line.color, "dash" if line.dash else "line") for line in lines)
        + tuple(_mark_legend(report.marks, errors=True)),
    ))

    turns = [svg.Line("turns completed", "#2563eb", _counter_rate(report, "turns.completed"))]
    if not _has_counter(report, "turns.completed"):
        turns = []
    figures.append(Figure(
        "throughput", "Turns completed per second",
        svg.line_chart("Turns completed per second", turns, x_max=x_max, x_label=TIME_AXIS,
                       y_label="turns per second", marks=marks, integer_y=interval == 1,
                       empty_message="no turns completed"),
        tuple(LegendItem(line.name, line.color, "line") for line in turns) + tuple(mark_legend),
    ))

    recorded = [name for name in TURN_LATENCIES if _has_samples(report, name)]
    for name in recorded or [TURN_LATENCIES[-1]]:
        lines = [svg.Line(label, color, _percentile_points(report, name, q),
                          width=PERCENTILE_WIDTHS[label], bridge=BRIDGE_SLOTS)
                 for label, q, color in reversed(PERCENTILES)]
        title = f"{name} percentiles per second"
        figures.append(Figure(
            f"percentiles:{name}", title,
            svg.line_chart(title, lines, x_max=x_max, x_label=TIME_AXIS, y_label="latency (ms)",
                           marks=marks, empty_message=f"no {name} samples"),
            tuple(LegendItem(label, color, "line") for label, _, color in PERCENTILES)
            + tuple(mark_legend),
        ))
    return figures


# ---------------------------------------------------------------------------- distributions


def histogram_bars(h: Histogram, *, scale: float = 1000.0, max_bars: int = 48) -> list[svg.Bar]:
    """``h``'s samples regrouped into bars of equal width on a log axis, values times
    ``scale`` (seconds to ms): 1, 2, 4, 8 or 16 bars per octave, the finest that keeps the
    data within ``max_bars`` bars. A sample of 0 is drawn in the lowest bucket's middle."""
    flat = h.to_dict()["b"]
    centres: list[tuple[float, int]] = []
    index = 0
    for delta, count in zip(flat[::2], flat[1::2]):
        index += delta
        if index == UNDERFLOW:
            centre = LOWEST / 2
        elif index == OVERFLOW:
            centre = h.max or LOWEST
        else:
            lo, hi = bucket_bounds(index)
            centre = (lo + hi) / 2
        centres.append((centre * scale, count))
    if not centres:
        return []
    lo, hi = centres[0][0], centres[-1][0]
    octaves = math.log2(hi / lo) if hi > lo else 0.0
    per_octave = next((k for k in (16, 8, 4, 2) if octaves * k <= max_bars - 1), 1)
    bins: dict[int, int] = {}
    for value, count in centres:
        j = math.floor(math.log2(value) * per_octave + 1e-9)
        bins[j] = bins.get(j, 0) + count
    return [svg.Bar(2 ** (j / per_octave), 2 ** ((j + 1) / per_octave), n)
            for j, n in sorted(bins.items())]


def histogram_figures(report: RunReport) -> list[Figure]:
    figures = []
    for name in ordered_histograms(list(report.metrics.histograms)):
        h = report.metrics.histograms[name]
        if not h.count:
            continue
        markers = []
        for (label, _, color), value in zip(PERCENTILES, h.percentiles([q for _, q, _ in PERCENTILES])):
            if value is not None:
                ms = value * 1000
                text = f"{label} {svg.format_tick(_round_sig(ms))}"
                markers.append(svg.VMark(ms, text, f"{label} = {ms:.4g} ms", color, "5 3", 1.4))
        title = f"{name} distribution"
        figures.append(Figure(
            f"histogram:{name}", title,
            svg.histogram_chart(title, histogram_bars(h), markers=markers,
                                x_label=f"{name} (ms, log scale)"),
            (LegendItem("samples", "#4c78a8"),)
            + tuple(LegendItem(label, color, "dash") for label, _, color in PERCENTILES),
            note=f"{h.count:,} sample{'' if h.count == 1 else 's'}",
        ))
    return figures


def _round_sig(value: float, digits: int = 3) -> float:
    if value <= 0 or not math.isfinite(value):
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(value)))
