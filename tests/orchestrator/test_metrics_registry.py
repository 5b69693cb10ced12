"""MetricsRegistry (counters, gauges, histograms; snapshots that merge), the threshold lookup,
and per-second TimeSeries."""

import json
import random

import msgpack
import pytest

from orchestrator.metrics import Histogram, MetricsRegistry, MetricStatError, TimeSeries, make_lookup
from orchestrator.scenario.thresholds import evaluate, parse_threshold


def _registry() -> MetricsRegistry:
    r = MetricsRegistry()
    r.inc("sessions.completed", 48)
    r.inc("sessions.completed", 2)
    r.inc("errors", 0)
    r.set_gauge("reconnect.success_rate", 1.0)
    for v in (0.2, 0.3, 0.4, 0.9):
        r.observe("turn.time_to_first_audio", v)
    return r


def test_snapshot_is_plain_data_and_round_trips():
    r = _registry()
    snap = r.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert MetricsRegistry.from_snapshot(msgpack.unpackb(msgpack.packb(snap))) == r
    assert snap["counters"] == {"sessions.completed": 50, "errors": 0}


def test_merge_adds_counters_and_gauges_and_merges_histograms():
    a, b = _registry(), _registry()
    b.inc("only.in.b")
    b.observe("other", 1.0)
    a.merge(b.snapshot())
    assert a.counters == {"sessions.completed": 100, "errors": 0, "only.in.b": 1}
    assert a.gauges == {"reconnect.success_rate": 2.0}
    assert a.histograms["turn.time_to_first_audio"] == Histogram.from_values([0.2, 0.3, 0.4, 0.9] * 2)
    assert a.histograms["other"].count == 1
    c = MetricsRegistry()
    c.merge(b)  # a registry merges directly too
    assert c == b


def test_histogram_handle_is_stable():
    r = MetricsRegistry()
    h = r.histogram("x")
    h.record(0.5)
    assert r.histogram("x") is h
    assert r.lookup("x", "count") == 1


@pytest.mark.parametrize(
    ("metric", "stat", "expected"),
    [
        ("sessions.completed", None, 50.0),
        ("sessions.completed", "count", 50.0),
        ("sessions.completed", "rate", 5.0),
        ("reconnect.success_rate", None, 1.0),
        ("turn.time_to_first_audio", "count", 4.0),
        ("turn.time_to_first_audio", "rate", 0.4),
        ("turn.time_to_first_audio", "min", 0.2),
        ("turn.time_to_first_audio", "max", 0.9),
        ("turn.time_to_first_audio", "mean", pytest.approx(0.45)),
        ("turn.time_to_first_audio", "p50", pytest.approx(0.3, rel=0.01)),
        ("turn.time_to_first_audio", "p100", 0.9),
        ("missing", None, None),
        ("missing", "p95", None),
    ],
)
def test_lookup(metric, stat, expected):
    assert _registry().lookup(metric, stat, elapsed=10.0) == expected


@pytest.mark.parametrize(
    ("metric", "stat", "message"),
    [
        ("turn.time_to_first_audio", None, "is a histogram; give a statistic"),
        ("sessions.completed", "p95", "p95 applies to histograms; 'sessions.completed' is a counter"),
        ("reconnect.success_rate", "count", "count applies to histograms; 'reconnect.success_rate' is a gauge"),
        ("sessions.completed", "rate", "rate needs the run's elapsed time"),
        ("turn.time_to_first_audio", "median", "unknown statistic 'median'"),
    ],
)
def test_lookup_refusals(metric, stat, message):
    with pytest.raises(MetricStatError, match=message):
        _registry().lookup(metric, stat)  # no elapsed time


def test_empty_histogram_has_no_percentile():
    r = MetricsRegistry()
    r.histogram("x")
    assert r.lookup("x", "p95") is None
    assert r.lookup("x", "count") == 0


def test_thresholds_against_a_registry():
    thresholds = [
        parse_threshold(t)
        for t in (
            "errors == 0",
            "sessions.completed >= 50",
            "turn.time_to_first_audio p95 < 800ms",
            "turn.time_to_first_audio p50 < 800ms",
            "reconnect.success_rate == 1",
            "sessions.failed == 0",
            "turn.time_to_first_text p95 < 1s",
            "sessions.completed p95 < 1",
        )
    ]
    results = evaluate(thresholds, make_lookup(_registry(), elapsed=10))
    assert [r.passed for r in results] == [True, True, False, True, True, True, False, False]
    assert results[2].reason == "turn.time_to_first_audio p95 = 900ms, FAILED: < 800ms"
    assert results[5].observed == 0.0  # absent, count-like
    assert results[6].reason == "turn.time_to_first_text p95 was not recorded"
    assert "is a counter" in results[7].reason


# -- time series ------------------------------------------------------------------------------


def test_time_series_slots_and_series():
    ts = TimeSeries(origin=100.0)
    ts.inc("turns", 100.2)
    ts.inc("turns", 100.9, 2)
    ts.observe("ttfa", 0.5, 100.5)
    ts.observe("ttfa", 0.7, 103.0)
    ts.set_gauge("active", 12, 103.5)
    assert sorted(ts.slots) == [0, 3]
    assert ts.series("turns") == [(100.0, 3.0), (101.0, None), (102.0, None), (103.0, None)]
    assert ts.series("turns", "rate") == [(100.0, 3.0), (101.0, None), (102.0, None), (103.0, None)]
    assert ts.series("ttfa", "p50") == [(100.0, 0.5), (101.0, None), (102.0, None), (103.0, 0.7)]
    assert ts.series("active")[-1] == (103.0, 12.0)
    total = ts.total()
    assert total.counters == {"turns": 3}
    coarse = Histogram()
    for value in (0.5, 0.7):
        coarse.record_coarse(value)
    assert total.histograms["ttfa"] == coarse  # slots keep a sixteenth of the resolution
    assert TimeSeries().series("x") == []


def test_coarse_recording_bounds_a_slot_and_keeps_percentiles_within_its_resolution():
    """A slot that sees many distinct values (a coarsened slot of an hours-long run) keeps at
    most 4 buckets an octave; its percentiles stay within the coarse resolution (12.5 %)."""
    rng = random.Random(5)
    values = [rng.lognormvariate(-3, 1) for _ in range(20_000)]
    fine, coarse = Histogram.from_values(values), Histogram()
    for value in values:
        coarse.record_coarse(value)
    assert len(coarse._counts) * 12 < len(fine._counts)
    assert coarse.count == fine.count and coarse.min == fine.min and coarse.max == fine.max
    for q in (50, 90, 95, 99):
        assert abs(coarse.percentile(q) / fine.percentile(q) - 1) <= 0.125, q


def test_time_series_half_second_slots_and_negative_time():
    ts = TimeSeries(interval=0.5)
    ts.inc("x", -0.1)
    ts.inc("x", 0.74)
    assert sorted(ts.slots) == [-1, 1]
    assert ts.series("x", "rate") == [(-0.5, 2.0), (0.0, None), (0.5, 2.0)]


def test_time_series_snapshot_and_merge():
    a, b = TimeSeries(), TimeSeries()
    a.inc("turns", 0.5)
    a.observe("ttfa", 0.2, 1.5)
    b.inc("turns", 0.1)
    b.observe("ttfa", 0.4, 1.2)
    b.observe("ttfa", 0.3, 5.0)
    snap = b.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert TimeSeries.from_snapshot(msgpack.unpackb(msgpack.packb(snap))) == b
    a.merge(snap)
    assert a.series("turns")[0] == (0.0, 2.0)
    both = Histogram()
    for value in (0.2, 0.4):
        both.record_coarse(value)
    assert a.slots[1].histograms["ttfa"] == both
    assert a.series("ttfa", "count")[-1] == (5.0, 1.0)
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(TimeSeries(interval=1.5))  # 2.0 now aligns (coarsened shards)
