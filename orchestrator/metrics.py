"""Run metrics: a mergeable log-linear histogram, a registry of named metrics, and per-second
time series -- plain data in, plain data (JSON/msgpack-ready dicts) out.

**Histogram layout** (fixed, so any two histograms merge exactly). A value ``v`` (seconds,
say) in ``[2**-20, 2**12)`` -- about 0.95 us to 68 min -- falls in octave ``e`` (``v =
m * 2**e``, ``0.5 <= m < 1``, as `math.frexp` gives) and in one of `SUB_BUCKETS` (64) equal
linear sub-buckets of that octave: 32 octaves x 64 = 2048 buckets, plus one underflow bucket
for ``0 <= v < 2**-20`` and one overflow bucket for ``v >= 2**12``. Each bucket is at most
1/64 of its lower bound wide; percentiles report the bucket midpoint (clamped to the exact
min and max, which are also what ranks 1 and n report), so

    **relative error <= 1/128 (0.79 %)** for values in range,

absolute error <= 2**-21 s (0.48 us) in the underflow bucket, and the overflow bucket reports
the exact max. Counts are kept in a sparse dict, so an idle histogram is small.

Percentiles use the nearest-rank definition: ``percentile(q)`` is the smallest recorded
value (to bucket precision) with at least ``q`` % of the samples at or below it (numpy's
``method="inverted_cdf"``). `Histogram.merge` adds counts, so a merged histogram answers
exactly what one histogram fed all the samples would (min, max and count exactly too; the
sum -- hence the mean -- up to float rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any

import attrs

__all__ = [
    "Histogram",
    "MetricsRegistry",
    "TimeSeries",
    "MetricStatError",
    "make_lookup",
    "SUB_BUCKETS",
    "LOWEST",
    "HIGHEST",
    "RELATIVE_ERROR",
]

SUB_BITS = 6
SUB_BUCKETS = 1 << SUB_BITS  # linear sub-buckets per power of two
MIN_EXP = -20  # lowest tracked value 2**MIN_EXP
MAX_EXP = 12  # values >= 2**MAX_EXP overflow
LOWEST = math.ldexp(1.0, MIN_EXP)
HIGHEST = math.ldexp(1.0, MAX_EXP)
RELATIVE_ERROR = 1 / (2 * SUB_BUCKETS)
#: sub-buckets merged into one by :meth:`Histogram.record_coarse` (per-slot series)
COARSE_GROUP = 16
UNDERFLOW = 0
OVERFLOW = 1 + (MAX_EXP - MIN_EXP) * SUB_BUCKETS
#: index = e * S + int(m * 2S) + _BASE, for frexp (m, e); e ranges MIN_EXP+1 .. MAX_EXP
_BASE = 1 - (MIN_EXP + 1) * SUB_BUCKETS - SUB_BUCKETS
_TWO_S = 2.0 * SUB_BUCKETS
_LAYOUT = f"log2x{SUB_BUCKETS}:{MIN_EXP}:{MAX_EXP}"
_FORMAT = 1
_frexp = math.frexp


def bucket_bounds(index: int) -> tuple[float, float]:
    """``[lo, hi)`` of bucket ``index`` (overflow: ``[HIGHEST, inf)``)."""
    if index == UNDERFLOW:
        return 0.0, LOWEST
    if index == OVERFLOW:
        return HIGHEST, math.inf
    octave, sub = divmod(index - 1, SUB_BUCKETS)
    base = math.ldexp(1.0, MIN_EXP + octave)
    width = base / SUB_BUCKETS
    return base + sub * width, base + (sub + 1) * width


class MetricStatError(ValueError):
    """A statistic that does not apply to a metric (``p95`` of a counter, ``rate`` without
    the elapsed time). Threshold evaluation reports the message as the failure reason."""


@attrs.define(eq=False)
class Histogram:
    """Counts of non-negative values in the fixed log-linear layout (see the module doc)."""

    _counts: dict[int, int] = attrs.field(factory=dict, init=False)
    count: int = attrs.field(default=0, init=False)
    _sum: float = attrs.field(default=0.0, init=False)
    _min: float = attrs.field(default=math.inf, init=False)
    _max: float = attrs.field(default=-math.inf, init=False)

    @classmethod
    def from_values(cls, values: Iterable[float]) -> Histogram:
        h = cls()
        for v in values:
            h.record(v)
        return h

    def record_coarse(self, value: float) -> None:
        """Count ``value`` at a sixteenth of the resolution: in the middle sub-bucket of its
        group of :data:`COARSE_GROUP` (same layout, so merges and reads are unchanged; at most
        12.5 % relative error instead of 0.8 %). Per-slot series use it: a slot's histogram then
        holds at most 4 buckets an octave, however many distinct values an hours-long slot sees."""
        if not LOWEST <= value < HIGHEST:
            self.record(value)  # underflow, overflow and bad values as usual
            return
        m, e = _frexp(value)
        index = e * SUB_BUCKETS + int(m * _TWO_S) + _BASE
        index += COARSE_GROUP // 2 - (index - 1) % COARSE_GROUP
        counts = self._counts
        counts[index] = counts.get(index, 0) + 1
        self.count += 1
        self._sum += value
        if value < self._min:
            self._min = value
        if value > self._max:
            self._max = value

    def record(self, value: float, count: int = 1) -> None:
        """Count ``value`` (``count`` times). Negative, NaN and infinite values raise
        ValueError. Well under 1 us per call on CPython 3.11."""
        if value >= LOWEST:
            if value < HIGHEST:
                m, e = _frexp(value)
                index = e * SUB_BUCKETS + int(m * _TWO_S) + _BASE
            elif value != math.inf:
                index = OVERFLOW
            else:
                raise ValueError("a histogram records finite values, got inf")
        elif value >= 0.0:
            index = UNDERFLOW
        else:
            raise ValueError(f"a histogram records values >= 0, got {value!r}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count!r}")
        counts = self._counts
        counts[index] = counts.get(index, 0) + count
        self.count += count
        self._sum += value * count
        if value < self._min:
            self._min = value
        if value > self._max:
            self._max = value

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s samples to this histogram (exact)."""
        counts = self._counts
        for index, n in other._counts.items():
            counts[index] = counts.get(index, 0) + n
        self.count += other.count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def copy(self) -> Histogram:
        h = Histogram()
        h.merge(self)
        return h

    @property
    def min(self) -> float | None:
        return self._min if self.count else None

    @property
    def max(self) -> float | None:
        return self._max if self.count else None

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def mean(self) -> float | None:
        return self._sum / self.count if self.count else None

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile ``q`` (0-100) to bucket precision; None when empty."""
        return self.percentiles((q,))[0]

    def percentiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several percentiles in one pass over the buckets."""
        qs = list(qs)
        for q in qs:
            if not 0 <= q <= 100:
                raise ValueError(f"a percentile is between 0 and 100, got {q!r}")
        if not self.count:
            return [None] * len(qs)
        n = self.count
        # rank = ceil(q/100 * n), at least 1, exact for decimal q such as 99.9
        ranks = sorted(
            (max(1, math.ceil(Fraction(repr(float(q))) * n / 100)), i) for i, q in enumerate(qs)
        )
        out: list[float | None] = [None] * len(qs)
        while ranks and ranks[0][0] == 1:  # the smallest and largest samples are known exactly
            out[ranks.pop(0)[1]] = self._min
        while ranks and ranks[-1][0] == n:
            out[ranks.pop()[1]] = self._max
        seen, r = 0, 0
        for index in sorted(self._counts):
            seen += self._counts[index]
            while r < len(ranks) and ranks[r][0] <= seen:
                out[ranks[r][1]] = self._representative(index)
                r += 1
            if r == len(ranks):
                break
        return out

    def _representative(self, index: int) -> float:
        if index == OVERFLOW:
            return self._max
        lo, hi = bucket_bounds(index)
        return min(max((lo + hi) / 2, self._min), self._max)

    def summary(self) -> dict[str, float | int | None]:
        """count, min, mean, p50, p90, p95, p99, max -- for reports."""
        p50, p90, p95, p99 = self.percentiles((50, 90, 95, 99))
        return {
            "count": self.count,
            "min": self.min,
            "mean": self.mean,
            "p50": p50,
            "p90": p90,
            "p95": p95,
            "p99": p99,
            "max": self.max,
        }

    def to_dict(self) -> dict[str, Any]:
        """Compact plain data: sparse buckets as ``[index delta, count, ...]`` pairs."""
        flat: list[int] = []
        previous = 0
        for index in sorted(self._counts):
            flat += (index - previous, self._counts[index])
            previous = index
        empty = not self.count
        return {
            "v": _FORMAT,
            "layout": _LAYOUT,
            "n": self.count,
            "sum": float(self._sum),
            "min": None if empty else float(self._min),
            "max": None if empty else float(self._max),
            "b": flat,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        """Inverse of `to_dict`; raises ValueError on another layout or inconsistent data."""
        if data.get("v") != _FORMAT or data.get("layout") != _LAYOUT:
            found = f"{data.get('v')!r}/{data.get('layout')!r}"
            raise ValueError(f"unsupported histogram format {found}; expected {_FORMAT}/{_LAYOUT}")
        flat = data["b"]
        if len(flat) % 2:
            raise ValueError("histogram buckets must come in (index delta, count) pairs")
        counts: dict[int, int] = {}
        index = 0
        for delta, n in zip(flat[::2], flat[1::2]):
            index += delta
            if not (UNDERFLOW <= index <= OVERFLOW) or n < 1 or (delta <= 0 and counts):
                raise ValueError(f"invalid histogram bucket {index} with count {n}")
            counts[index] = n
        total = sum(counts.values())
        if total != data["n"]:
            raise ValueError(f"histogram bucket counts add up to {total}, not n={data['n']}")
        h = cls()
        h._counts, h.count, h._sum = counts, total, float(data["sum"])
        if total:
            h._min, h._max = float(data["min"]), float(data["max"])
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        mine = (self._counts, self.count, self.min, self.max)
        theirs = (other._counts, other.count, other.min, other.max)
        return mine == theirs and math.isclose(self._sum, other._sum, rel_tol=1e-12, abs_tol=1e-15)


def _histogram_stat(h: Histogram, stat: str, elapsed: float | None) -> float | None:
    if stat == "count":
        return float(h.count)
    if stat == "rate":
        return _rate(h.count, elapsed)
    if stat == "min":
        return h.min
    if stat == "max":
        return h.max
    if stat == "mean":
        return h.mean
    if stat.startswith("p"):
        try:
            q = float(stat[1:])
        except ValueError:
            raise MetricStatError(f"unknown statistic {stat!r}") from None
        return h.percentile(q)
    raise MetricStatError(f"unknown statistic {stat!r}")


def _rate(count: float, elapsed: float | None) -> float:
    if not elapsed or elapsed <= 0:
        raise MetricStatError("rate needs the run's elapsed time")
    return count / elapsed


@attrs.define
class MetricsRegistry:
    """Named counters (add up), gauges (levels; merged by summing, e.g. active sessions
    across workers) and histograms. Names are dotted strings (``turn.time_to_first_audio``)."""

    counters: dict[str, float] = attrs.field(factory=dict)
    gauges: dict[str, float] = attrs.field(factory=dict)
    histograms: dict[str, Histogram] = attrs.field(factory=dict)

    def inc(self, name: str, amount: float = 1) -> None:
        """Add to a counter (``inc(name, 0)`` declares it, so thresholds see 0, not absent)."""
        self.counters[name] = self.counters.get(name, 0) + amount

    def set_gauge(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def histogram(self, name: str) -> Histogram:
        """The histogram called ``name``, created empty on first use (keep it for hot paths)."""
        h = self.histograms.get(name)
        if h is None:
            h = self.histograms[name] = Histogram()
        return h

    def observe(self, name: str, value: float, count: int = 1) -> None:
        self.histogram(name).record(value, count)

    def snapshot(self) -> dict[str, Any]:
        """Plain data (JSON/msgpack) that `merge` and `from_snapshot` read."""
        return {"counters": dict(self.counters), "gauges": dict(self.gauges),
                "histograms": {k: h.to_dict() for k, h in self.histograms.items()}}

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> MetricsRegistry:
        registry = cls()
        registry.merge(snapshot)
        return registry

    def merge(self, snapshot: Mapping[str, Any] | MetricsRegistry) -> None:
        """Add another registry (or its snapshot): counters and gauges add, histograms merge."""
        if isinstance(snapshot, MetricsRegistry):
            snapshot = snapshot.snapshot()
        for name, value in snapshot.get("counters", {}).items():
            self.counters[name] = self.counters.get(name, 0) + value
        for name, value in snapshot.get("gauges", {}).items():
            self.gauges[name] = self.gauges.get(name, 0) + value
        for name, data in snapshot.get("histograms", {}).items():
            self.histogram(name).merge(Histogram.from_dict(data))

    def lookup(
        self, metric: str, stat: str | None, *, elapsed: float | None = None
    ) -> float | None:
        """The value a threshold compares; None when the metric does not exist (or has no
        samples). Raises `MetricStatError` when ``stat`` does not apply to the metric."""
        if metric in self.histograms:
            if stat is None:
                message = f"{metric!r} is a histogram; give a statistic such as p95 or count"
                raise MetricStatError(message)
            return _histogram_stat(self.histograms[metric], stat, elapsed)
        for kind, values in (("counter", self.counters), ("gauge", self.gauges)):
            if metric in values:
                value = float(values[metric])
                if stat is None or (stat == "count" and kind == "counter"):
                    return value
                if stat == "rate" and kind == "counter":
                    return _rate(value, elapsed)
                raise MetricStatError(f"{stat} applies to histograms; {metric!r} is a {kind}")
        return None


Lookup = Callable[[str, "str | None"], "float | None"]


def make_lookup(registry: MetricsRegistry, *, elapsed: float | None = None) -> Lookup:
    """A ``(metric, stat) -> float | None`` for `orchestrator.scenario.thresholds.evaluate`;
    ``elapsed`` (run seconds) enables the ``rate`` statistic."""

    def lookup(metric: str, stat: str | None) -> float | None:
        return registry.lookup(metric, stat, elapsed=elapsed)

    return lookup


@attrs.define
class TimeSeries:
    """Metrics per time slot (default 1 s) for "over time" plots: slot ``i`` covers
    ``[origin + i*interval, origin + (i+1)*interval)`` on the caller's clock.

    Bounded for hours-long runs: when a new slot would make more than ``max_slots``, the series
    coarsens (pairs of slots merge and the interval doubles: counters and histograms add up, a
    gauge keeps the later level), so memory stays flat however long the run and the plots keep
    their shape. Runs shorter than ``max_slots`` intervals (4.3 min at 1 s) are never coarsened.
    A slot's histograms keep a sixteenth of the layout's resolution
    (:meth:`Histogram.record_coarse`, at most 12.5 % relative error): a coarsened slot covers minutes
    and would otherwise grow a bucket for nearly every distinct value it saw (the 2-hour soak's
    client grew ~15 MB/h that way). Whole-run histograms keep the full resolution.

    What a full series holds, measured (``bench/timeline_memory.py``: 100 sessions' frame
    lateness, turn and connect times for 4,000 s): 2.2 MB with 256 slots at 4 buckets an
    octave, against 7.3 MB with 512 slots at 8, and it fills over the run's first half hour
    (+0.5 MB from 2 to 10 minutes, against +2.3 MB): a soak's client memory is flat sooner.
    """

    interval: float = 1.0
    origin: float = 0.0
    slots: dict[int, MetricsRegistry] = attrs.field(factory=dict)
    max_slots: int = 256

    def slot(self, now: float) -> MetricsRegistry:
        index = math.floor((now - self.origin) / self.interval)
        registry = self.slots.get(index)
        if registry is None:
            if len(self.slots) >= self.max_slots:
                self.coarsen(2)
                return self.slot(now)
            registry = self.slots[index] = MetricsRegistry()
        return registry

    def coarsen(self, factor: int) -> None:
        """Merge every ``factor`` consecutive slots into one (the interval grows as much)."""
        merged: dict[int, MetricsRegistry] = {}
        for index in sorted(self.slots):
            source = self.slots.pop(index)  # in place: never two copies of the series at once
            target = merged.get(index // factor)
            if target is None:
                merged[index // factor] = source  # the first slot of the group takes the rest
                continue
            levels = dict(source.gauges)
            target.merge(source)
            target.gauges.update(levels)  # a level: the later slot's value, not a sum
        self.slots = merged
        self.interval *= factor

    def inc(self, name: str, now: float, amount: float = 1) -> None:
        self.slot(now).inc(name, amount)

    def observe(self, name: str, value: float, now: float) -> None:
        self.slot(now).histogram(name).record_coarse(value)

    def set_gauge(self, name: str, value: float, now: float) -> None:
        self.slot(now).set_gauge(name, value)

    def series(self, metric: str, stat: str | None = None) -> list[tuple[float, float | None]]:
        """``(slot start time, value)`` for every slot from the first to the last (empty
        slots give None); ``rate`` is per second within the slot."""
        if not self.slots:
            return []
        out = []
        for index in range(min(self.slots), max(self.slots) + 1):
            registry = self.slots.get(index)
            value = None
            if registry is not None:
                value = registry.lookup(metric, stat, elapsed=self.interval)
            out.append((self.origin + index * self.interval, value))
        return out

    def total(self) -> MetricsRegistry:
        """All slots merged (gauges summed across slots are rarely meaningful; use series)."""
        total = MetricsRegistry()
        for index in sorted(self.slots):
            total.merge(self.slots[index])
        return total

    def snapshot(self) -> dict[str, Any]:
        return {"interval": self.interval, "origin": self.origin,
                "slots": [[index, self.slots[index].snapshot()] for index in sorted(self.slots)]}

    def merge(self, snapshot: Mapping[str, Any] | TimeSeries) -> None:
        """Add another series with the same interval and origin, slot by slot."""
        if isinstance(snapshot, TimeSeries):
            snapshot = snapshot.snapshot()
        if snapshot["origin"] == self.origin and snapshot["interval"] != self.interval:
            ratio = max(snapshot["interval"], self.interval) / min(snapshot["interval"], self.interval)
            if ratio == int(ratio):  # one was coarsened more (a longer shard): align them
                if snapshot["interval"] > self.interval:
                    self.coarsen(int(ratio))
                else:
                    other = TimeSeries.from_snapshot(snapshot)
                    other.coarsen(int(ratio))
                    snapshot = other.snapshot()
        if snapshot["interval"] != self.interval or snapshot["origin"] != self.origin:
            raise ValueError(
                "cannot merge a series with interval/origin "
                f"{snapshot['interval']}/{snapshot['origin']} into {self.interval}/{self.origin}"
            )
        for index, data in snapshot["slots"]:
            registry = self.slots.get(index)
            if registry is None:
                registry = self.slots[index] = MetricsRegistry()
            registry.merge(data)

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> TimeSeries:
        series = cls(interval=snapshot["interval"], origin=snapshot["origin"])
        series.merge(snapshot)
        return series
