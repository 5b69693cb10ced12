"""The per-second timeline stays bounded on hours-long runs (issue 20): it coarsens, losing no count."""

from orchestrator.metrics import TimeSeries


def _feed(series: TimeSeries, seconds: int) -> None:
    for second in range(seconds):
        now = second + 0.5
        series.inc("turns.completed", now, 2)
        series.observe("turn.duration", 0.1 + (second % 7) / 100, now)
        series.set_gauge("sessions.connected", second % 10, now)


def test_two_hours_of_seconds_stay_under_the_slot_bound_and_keep_every_count():
    series = TimeSeries(max_slots=256)
    _feed(series, 7200)
    assert len(series.slots) <= 256
    assert series.interval == 32.0  # 7200 s / 32 = 225 slots
    total = series.total()
    assert total.counters["turns.completed"] == 2 * 7200
    assert total.histograms["turn.duration"].count == 7200
    # a gauge is a level: a coarse slot shows its last second's value, not a sum
    last_index = max(series.slots)
    assert series.slots[last_index].gauges["sessions.connected"] == 7199 % 10
    # the rate plot keeps its scale: turns per second per slot stays 2
    assert all(value == 2 for _, value in series.series("turns.completed", "rate")
               if value is not None and _ < 7200 - series.interval)


def test_a_short_run_is_never_coarsened():
    series = TimeSeries()
    _feed(series, 250)
    assert series.interval == 1.0 and len(series.slots) == 250
    _feed(series, 257)  # one slot more than the bound: the series coarsens once
    assert series.interval == 2.0 and len(series.slots) <= 256


def test_shards_coarsened_differently_merge_aligned():
    long, short = TimeSeries(max_slots=64), TimeSeries(max_slots=64)
    _feed(long, 300)
    _feed(short, 60)
    assert long.interval > short.interval
    merged = TimeSeries.from_snapshot(short.snapshot())
    merged.merge(long.snapshot())
    assert merged.interval == long.interval
    assert merged.total().counters["turns.completed"] == 2 * 360
