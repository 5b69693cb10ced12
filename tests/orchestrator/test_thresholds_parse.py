"""Threshold expressions: parsing, errors pointing into the expression, evaluation."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.scenario.thresholds import (
    Threshold,
    ThresholdError,
    evaluate,
    parse_threshold,
    zero_when_absent,
)


@pytest.mark.parametrize(
    ("text", "metric", "stat", "op", "value", "unit"),
    [
        ("turn.time_to_first_audio p95 < 800ms", "turn.time_to_first_audio", "p95", "<", 0.8, "ms"),
        ("reconnect.success_rate == 1", "reconnect.success_rate", None, "==", 1.0, None),
        ("errors == 0", "errors", None, "==", 0.0, None),
        ("turn.time_to_first_text p99 <= 1.2s", "turn.time_to_first_text", "p99", "<=", 1.2, "s"),
        ("sessions.completed >= 50", "sessions.completed", None, ">=", 50.0, None),
        ("turn.duration p99.9 < 2 s", "turn.duration", "p99.9", "<", 2.0, "s"),
        ("errors!=3", "errors", None, "!=", 3.0, None),
        ("a.b_c max > -1e-3", "a.b_c", "max", ">", -0.001, None),
        ("  x mean<=.5ms  ", "x", "mean", "<=", 0.0005, "ms"),
        ("reconnect.success_rate >= 99.5%", "reconnect.success_rate", None, ">=", 0.995, "%"),
        ("turns count >= 10", "turns", "count", ">=", 10.0, None),
        ("sessions.started rate > 1.5", "sessions.started", "rate", ">", 1.5, None),
        ("x p0 >= 0", "x", "p0", ">=", 0.0, None),
        ("x p100 < 5", "x", "p100", "<", 5.0, None),
    ],
)
def test_parses(text, metric, stat, op, value, unit):
    t = parse_threshold(text)
    assert (t.metric, t.stat, t.op, t.unit) == (metric, stat, op, unit)
    assert t.value == pytest.approx(value)
    assert t.source_text == text.strip()
    assert str(t) == text.strip()


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("", 0, "expected a metric name"),
        ("p95 < 1", 4, "expected a comparison operator"),  # 'p95' read as the metric, '<' ok? no
        ("errors = 0", 7, "use == for equality"),
        ("errors", 6, "expected a comparison operator"),
        ("turn.ttfa p95x < 1s", 10, "unknown statistic 'p95x'; did you mean 'p95'?"),
        ("turn.ttfa avg < 1s", 10, "unknown statistic 'avg'"),
        ("turn.ttfa p101 < 1s", 10, "above p100"),
        ("turn.ttfa p95 <", 15, "expected a number"),
        ("turn.ttfa p95 < fast", 16, "expected a number"),
        ("turn.ttfa p95 < 800 msec", 20, "unexpected 'msec'"),
        ("turn.ttfa p95 < 1m", 17, "unexpected 'm'"),
        ("1abc < 2", 0, "expected a metric name"),
        ("errors == 0 and more", 12, "unexpected 'and more'"),
    ],
)
def test_errors_point_into_the_expression(text, position, reason):
    if text == "p95 < 1":  # a metric may be called p95: this one parses
        assert parse_threshold(text).metric == "p95"
        return
    with pytest.raises(ThresholdError) as info:
        parse_threshold(text)
    err = info.value
    assert err.position == position, err
    assert reason in err.reason
    assert str(err).startswith(err.reason)
    assert f"at character {position + 1}" in str(err)
    assert isinstance(err, ValueError)


def test_non_string():
    with pytest.raises(ThresholdError, match="expected a threshold expression string"):
        parse_threshold(5)  # type: ignore[arg-type]


_metric = st.from_regex(r"[a-z_][a-z0-9_]{0,8}(\.[a-z_][a-z0-9_]{0,8}){0,2}", fullmatch=True)


@given(
    _metric,
    st.sampled_from([None, "p50", "p90", "p95", "p99", "min", "max", "mean", "count", "rate"]),
    st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "ms", "s", "%"]),
)
def test_parse_round_trip(metric, stat, op, number, unit):
    text = f"{metric} {stat} {op} {number}{unit}" if stat else f"{metric} {op} {number}{unit}"
    t = parse_threshold(text)
    scale = {"": 1, "ms": 0.001, "s": 1, "%": 0.01}[unit]
    assert (t.metric, t.stat, t.op) == (metric, stat, op)
    assert t.value == pytest.approx(float(number) * scale)
    assert parse_threshold(t.source_text) == t


# -- evaluation -------------------------------------------------------------------------------


def _lookup(values):
    def lookup(metric, stat):
        return values.get((metric, stat))

    return lookup


def test_evaluate_pass_and_fail():
    ts = [
        parse_threshold("turn.time_to_first_audio p95 < 800ms"),
        parse_threshold("turn.time_to_first_text p99 <= 1.2s"),
        parse_threshold("sessions.completed >= 50"),
        parse_threshold("reconnect.success_rate == 1"),
    ]
    results = evaluate(
        ts,
        _lookup({
            ("turn.time_to_first_audio", "p95"): 0.734,
            ("turn.time_to_first_text", "p99"): 1.3,
            ("sessions.completed", None): 50,
            ("reconnect.success_rate", None): 1.0 - 1e-12,
        }),
    )
    assert [r.passed for r in results] == [True, False, True, True]
    assert [r.threshold for r in results] == ts
    assert results[0].observed == 0.734
    assert results[0].reason == "turn.time_to_first_audio p95 = 734ms, ok: < 800ms"
    assert results[1].reason == "turn.time_to_first_text p99 = 1.3s, FAILED: <= 1.2s"


@pytest.mark.parametrize(
    ("text", "observed", "passed"),
    [
        ("x < 1", 1.0, False),
        ("x <= 1", 1.0, True),
        ("x > 1", 1.0, False),
        ("x >= 1", 1.0, True),
        ("x == 0.3", 0.1 + 0.2, True),
        ("x != 0.3", 0.1 + 0.2, False),
        ("x != 1", 2.0, True),
    ],
)
def test_operators(text, observed, passed):
    [result] = evaluate([parse_threshold(text)], lambda m, s: observed)
    assert result.passed is passed


def test_absent_metric_fails_with_reason():
    [result] = evaluate([parse_threshold("sessions.completed >= 50")], lambda m, s: None)
    assert not result.passed
    assert result.observed is None
    assert result.reason == "sessions.completed was not recorded"


@pytest.mark.parametrize(
    "text",
    ["errors == 0", "ws.errors == 0", "ws.close_errors <= 0", "sessions.failed == 0", "turns count == 0",
     "sessions.started rate <= 0", "x.timeouts == 0", "keys.rejected == 0", "frames.dropped == 0"],
)
def test_absent_count_like_metric_is_zero(text):
    [result] = evaluate([parse_threshold(text)], lambda m, s: None)
    assert result.passed, result.reason
    assert result.observed == 0.0


@pytest.mark.parametrize("text", ["errors p95 < 1", "sessions.completed >= 0", "errors_total == 0", "x min >= 0"])
def test_absent_other_metric_is_not_zero(text):
    [result] = evaluate([parse_threshold(text)], lambda m, s: None)
    assert not result.passed
    assert "was not recorded" in result.reason


def test_zero_when_absent_rule_can_be_replaced():
    t = parse_threshold("sessions.completed >= 0")
    [result] = evaluate([t], lambda m, s: None, zero_when_absent=lambda m, s: True)
    assert result.passed
    assert zero_when_absent("errors", None) and not zero_when_absent("errors", "max")


def test_lookup_may_refuse_with_a_reason():
    def lookup(metric, stat):
        raise ValueError("p95 applies to histograms; 'errors' is a counter")

    [result] = evaluate([parse_threshold("errors p95 < 1")], lookup)
    assert not result.passed
    assert result.reason == "errors p95: p95 applies to histograms; 'errors' is a counter"


def test_nan_fails():
    [result] = evaluate([parse_threshold("x < 1")], lambda m, s: math.nan)
    assert not result.passed
    assert "NaN" in result.reason


def test_threshold_is_a_frozen_value():
    t = parse_threshold("x p95 < 1s")
    assert t == Threshold("x", "p95", "<", 1.0, "x p95 < 1s", "s")
    assert hash(t) == hash(parse_threshold("x p95 < 1s"))
    assert t.percentile == 95.0
    assert parse_threshold("x < 1").percentile is None
