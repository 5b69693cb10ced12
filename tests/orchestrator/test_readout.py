"""How figures are written, shared by the terminal summary and the report."""

import pytest

from orchestrator.readout import format_number, format_observed, format_reconnects, reconnect_outcomes
from orchestrator.scenario.thresholds import parse_threshold


@pytest.mark.parametrize("value, text", [
    (13.5818, "13.6"), (734.2, "734"), (0.5, "0.5"), (40.0, "40"), (12345.6, "12346"),
    (0.0135818, "0.0136"), (0.0, "0"), (-2.25, "-2.25"), (float("nan"), "nan"),
    (0.30000000000000004, "0.3"),
])
def test_format_number(value, text):
    assert format_number(value) == text


def test_observed_values_of_one_latency_read_alike_whatever_the_threshold_unit():
    assert format_observed("turn.time_to_first_text p95 < 800ms", 0.0135818) == "13.6ms"
    assert format_observed("turn.time_to_first_text p99 < 1.5s", 0.0135818) == "13.6ms"
    assert format_observed("reconnect.success_rate >= 99%", 0.981) == "98.1%"
    assert format_observed("errors == 0", 3.0) == "3"
    assert format_observed("errors == 0", None) == "absent"
    assert parse_threshold("x p95 < 1.5s").format_observed(0.0135818) == "13.6ms"


def test_reconnects_name_what_did_not_succeed():
    counters = {"reconnect.attempts": 71, "reconnect.succeeded": 68, "reconnect.failed": 0,
                "reconnect.abandoned": 3}
    assert reconnect_outcomes(counters) == {"outages": 71, "succeeded": 68, "failed": 0,
                                            "abandoned": 3, "open": 0}
    assert format_reconnects(counters) == (
        "68 succeeded / 71 attempts (outages); 0 failed, "
        "3 abandoned (session ended while reconnecting)")
    assert format_reconnects({"reconnect.attempts": 2, "reconnect.succeeded": 1}) == (
        "1 succeeded / 2 attempts (outages); 0 failed, 1 still reconnecting")
    assert format_reconnects({}) == "0 succeeded / 0 attempts (outages)"
