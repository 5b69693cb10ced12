"""Durations: "500ms", "2s", "1.5m", "1h", plain numbers, to float seconds."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.scenario.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1.5m", 90.0),
        ("1h", 3600.0),
        ("0.25s", 0.25),
        (".5s", 0.5),
        ("10", 10.0),
        (" 3 s ", 3.0),
        ("1m30s", 90.0),
        ("1h 15m", 4500.0),
        ("2m500ms", 120.5),
        (0, 0.0),
        (7, 7.0),
        (1.25, 1.25),
    ],
)
def test_parses(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fast", "invalid duration 'fast'"),
        ("", "invalid duration ''"),
        ("5 minutes", "invalid duration"),
        ("1.5min", "invalid duration"),
        ("s", "invalid duration"),
        ("-1s", "invalid duration"),
        ("1s2", "invalid duration"),
        (-1, "cannot be negative"),
        (math.inf, "finite"),
        (math.nan, "finite"),
        (True, "expected a duration, got True"),
        (None, "expected a duration, got NoneType"),
        ([1], "expected a duration, got list"),
    ],
)
def test_rejects_with_clear_message(value, message):
    with pytest.raises(DurationError) as info:
        parse_duration(value)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_unit_scaling(number, unit):
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    assert parse_duration(f"{number}{unit}") == pytest.approx(number * scale)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_plain_numbers_are_seconds(value):
    assert parse_duration(value) == value
    assert parse_duration(repr(value)) == value


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.25, "250ms"), (2, "2s"), (90, "90s"), (7200, "2h"), (0, "0ms")]
)
def test_format(seconds, text):
    assert format_duration(seconds) == text
