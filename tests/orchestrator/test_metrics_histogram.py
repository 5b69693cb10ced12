"""The log-linear histogram: accuracy against numpy, exact merges, compact serialization."""

import json
import math
from fractions import Fraction

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.metrics import HIGHEST, LOWEST, RELATIVE_ERROR, SUB_BUCKETS, Histogram, bucket_bounds

QS = [0, 0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100]

# latencies from 1 us to 1 h, spread evenly in log space (plus exact repeats)
_latency = st.floats(min_value=math.log(1e-6), max_value=math.log(3600)).map(math.exp)
_samples = st.lists(_latency, min_size=1, max_size=400)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= RELATIVE_ERROR * b * (1 + 1e-12)


def _numpy_percentile(values, q) -> float:
    """numpy's nearest-rank percentile (``method="inverted_cdf"``), with the rank computed
    exactly: numpy rounds ``q/100 * n`` in floating point (``0.07 * 100 = 7.000000000000001``),
    which moves its rank up by one now and then, and in a sparse tail one sample is more than 1 %
    away. Elsewhere both agree, which the test checks too."""
    ordered = np.sort(np.asarray(values, dtype=float))
    rank = max(1, math.ceil(Fraction(str(q)) * len(ordered) / 100))
    exact = float(ordered[rank - 1])
    numpy_says = float(np.percentile(ordered, q, method="inverted_cdf"))
    assert numpy_says in (exact, float(ordered[min(rank, len(ordered) - 1)]))
    return exact


def test_documented_error_bound_is_under_one_percent():
    assert RELATIVE_ERROR == 1 / 128 < 0.01
    assert LOWEST < 1e-6 and HIGHEST > 3600


@settings(max_examples=200)
@given(_samples, st.sampled_from(QS) | st.integers(0, 100))
def test_percentiles_match_numpy_within_the_bound(values, q):
    h = Histogram.from_values(values)
    expected = _numpy_percentile(values, q)
    got = h.percentile(q)
    assert _close(got, expected), (got, expected)


@settings(max_examples=50)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["lognormal", "uniform", "exponential", "bimodal"]))
def test_accuracy_on_large_random_data(seed, shape):
    rng = np.random.default_rng(seed)
    n = 20_000
    data = {
        "lognormal": rng.lognormal(-2.0, 1.0, n),
        "uniform": rng.uniform(0.001, 2.0, n),
        "exponential": rng.exponential(0.3, n) + 1e-5,
        "bimodal": np.concatenate([rng.normal(0.2, 0.01, n // 2), rng.normal(1.5, 0.1, n // 2)]).clip(1e-4),
    }[shape]
    h = Histogram()
    for v in data.tolist():
        h.record(v)
    got = h.percentiles(QS)
    for q, value in zip(QS, got):
        expected = _numpy_percentile(data, q)
        assert _close(value, expected), (q, value, expected)
    assert h.count == n
    assert h.min == data.min() and h.max == data.max()
    assert h.mean == pytest.approx(float(data.mean()), rel=1e-9)


@given(_samples, _samples)
def test_merge_is_exact(a, b):
    whole = Histogram.from_values(a + b)
    merged = Histogram.from_values(a)
    merged.merge(Histogram.from_values(b))
    assert merged == whole
    assert merged.percentiles(QS) == whole.percentiles(QS)
    assert (merged.count, merged.min, merged.max) == (whole.count, whole.min, whole.max)
    assert merged.mean == pytest.approx(whole.mean, rel=1e-12)


@given(st.lists(_samples, min_size=1, max_size=6))
def test_merge_order_does_not_matter(parts):
    forward, backward = Histogram(), Histogram()
    for part in parts:
        forward.merge(Histogram.from_values(part))
    for part in reversed(parts):
        backward.merge(Histogram.from_values(part))
    assert forward == backward
    assert forward.percentiles(QS) == backward.percentiles(QS)


@given(_samples | st.just([]))
def test_serialization_round_trip(values):
    h = Histogram.from_values(values)
    data = h.to_dict()
    via_json = Histogram.from_dict(json.loads(json.dumps(data)))
    via_msgpack = Histogram.from_dict(msgpack.unpackb(msgpack.packb(data)))
    for other in (via_json, via_msgpack):
        assert other == h
        assert other.percentiles(QS) == h.percentiles(QS)
        assert (other.min, other.max, other.count) == (h.min, h.max, h.count)


def test_serialized_form_is_compact():
    rng = np.random.default_rng(0)
    h = Histogram.from_values(rng.lognormal(-2, 0.5, 100_000).tolist())
    data = h.to_dict()
    assert len(data["b"]) == 2 * len(h._counts)
    assert len(json.dumps(data)) < 4000
    assert all(isinstance(x, int) for x in data["b"])


def test_repeated_values_and_weights():
    h = Histogram()
    h.record(0.25, count=99)
    h.record(2.0)
    assert h.count == 100
    assert h.percentile(50) == pytest.approx(0.25, rel=RELATIVE_ERROR)
    assert h.percentile(99) == h.percentile(50)
    assert h.percentile(1) == 0.25 == h.min  # rank 1 is the exact min
    assert h.percentile(99.5) == 2.0 == h.max
    assert h.mean == pytest.approx((0.25 * 99 + 2) / 100)


def test_empty():
    h = Histogram()
    assert (h.count, h.min, h.max, h.mean, h.percentile(50)) == (0, None, None, None, None)
    assert h.summary()["p99"] is None
    assert Histogram.from_dict(h.to_dict()) == h
    h.merge(Histogram())
    assert h.count == 0


def test_out_of_range_values():
    h = Histogram.from_values([0.0, 1e-9, 1e-7])
    assert h.percentile(0) == 0.0 and h.percentile(100) == 1e-7
    assert abs(h.percentile(50) - 1e-9) <= LOWEST / 2
    big = Histogram.from_values([5000.0, 7200.0, 1.0])
    assert big.percentile(100) == 7200.0
    assert big.percentile(60) == 7200.0  # the overflow bucket reports the exact max
    assert big.percentile(10) == 1.0


@pytest.mark.parametrize("value", [-1e-9, -1.0, math.nan, -math.inf, math.inf])
def test_rejects_negative_nan_and_infinite(value):
    h = Histogram()
    with pytest.raises(ValueError, match="values >= 0|finite values"):
        h.record(value)
    assert h.count == 0


def test_rejects_bad_count_and_percentile():
    h = Histogram.from_values([1.0])
    with pytest.raises(ValueError, match="count must be >= 1"):
        h.record(1.0, 0)
    with pytest.raises(ValueError, match="between 0 and 100"):
        h.percentile(101)


@pytest.mark.parametrize(
    "data",
    [
        {"v": 2, "layout": "log2x64:-20:12", "n": 0, "sum": 0, "min": None, "max": None, "b": []},
        {"v": 1, "layout": "log2x32:-20:12", "n": 0, "sum": 0, "min": None, "max": None, "b": []},
        {"v": 1, "layout": "log2x64:-20:12", "n": 2, "sum": 1, "min": 1, "max": 1, "b": [5, 1]},
        {"v": 1, "layout": "log2x64:-20:12", "n": 1, "sum": 1, "min": 1, "max": 1, "b": [5]},
        {"v": 1, "layout": "log2x64:-20:12", "n": 1, "sum": 1, "min": 1, "max": 1, "b": [99999, 1]},
    ],
)
def test_from_dict_rejects_foreign_or_broken_data(data):
    with pytest.raises(ValueError):
        Histogram.from_dict(data)


def test_bucket_layout_is_contiguous_and_fine():
    previous_hi = 0.0
    last = 1 + 32 * SUB_BUCKETS
    for index in range(0, last + 1):
        lo, hi = bucket_bounds(index)
        assert lo == previous_hi
        if 0 < index < last:
            assert (hi - lo) / lo <= 1 / SUB_BUCKETS
        previous_hi = hi
    assert bucket_bounds(last) == (HIGHEST, math.inf)


@given(_latency)
def test_every_value_lands_in_its_bucket(value):
    h = Histogram.from_values([value])
    [index] = h._counts
    lo, hi = bucket_bounds(index)
    assert lo <= value < hi


def test_copy_is_independent():
    h = Histogram.from_values([1.0, 2.0])
    c = h.copy()
    c.record(3.0)
    assert (h.count, c.count) == (2, 3)
