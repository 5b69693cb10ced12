"""The pure parts of rate-limit handling: the tracker, the refusal categories, the admission
decision, the gate on the mock clock, and the scenario's ``rate_limits:`` (loader, errors with
file:line, round trip)."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from orchestrator.ratelimits import (
    LimitReading,
    RateLimitTracker,
    admission_hold,
    rate_limited_category,
)
from orchestrator.scenario.admission import RECHECK_S, AdmissionGate, RateLimits
from orchestrator.scenario.loader import ScenarioError, dump_scenario_text, load_scenario_text

ERROR = {"type": "error", "error": {"type": "tokens", "code": "rate_limit_exceeded", "message": "x"}}


def reading(name: str, limit: float, remaining: float, reset: float = 0.0, at: float = 0.0) -> LimitReading:
    return LimitReading(name, limit, remaining, reset, at)


def test_categories():
    assert rate_limited_category("server", ERROR, connected=False) == "connections"
    assert rate_limited_category("server", ERROR, connected=True) == "responses"
    other = {"type": "error", "error": {"code": "invalid_value"}}
    assert rate_limited_category("server", other, connected=True) is None
    refused = {"from": "connecting", "to": "reconnecting",
               "reason": "dropped (handshake rejected: HTTP 429)"}
    assert rate_limited_category("state", refused, connected=False) == "connections"
    assert rate_limited_category("state", {**refused, "reason": "HTTP 500"}, connected=False) is None


def test_tracker_keeps_the_latest_reading_per_key_model_and_name():
    tracker = RateLimitTracker()
    tracker.observe("k1", "m", [{"name": "tokens", "limit": 100, "remaining": 90, "reset_seconds": 1}], 1.0)
    tracker.observe("k1", "m", [{"name": "tokens", "limit": 100, "remaining": 40, "reset_seconds": 2},
                                {"name": "bogus"}], 2.0)
    tracker.observe("k2", "m", [{"name": "tokens", "limit": 5, "remaining": 5, "reset_seconds": 0}], 3.0)
    assert tracker.readings("k1", "m") == [reading("tokens", 100, 40, 2, 2.0)]
    assert tracker.readings("k1", "other") == []
    assert tracker.updates == 3 and tracker.first_update_at == 1.0
    tracker.refused("connections", "k1", "m", connected=4)
    tracker.refused("connections", "k1", "m", connected=3)
    tracker.refused("responses", "k1", "m")
    assert tracker.learned("k1", "m") == 3 and tracker.learned("k2") is None
    assert tracker.snapshot()["refusals"] == {"connections": 2, "responses": 1}


def test_admission_hold_concurrency_sources_and_headroom():
    announced = [reading("sessions", 10, 10)]
    assert admission_hold(announced, now=0, active=8, headroom=0.1) is None
    assert admission_hold(announced, now=0, active=9, headroom=0.1) == math.inf
    # a configured limit wins over an announced one; a learned one applies when nothing else does
    assert admission_hold(announced, now=0, active=2, headroom=0, max_concurrent=2) == math.inf
    assert admission_hold([], now=0, active=3, headroom=0, learned=3) == math.inf
    assert admission_hold([], now=0, active=3, headroom=0) is None
    # at least one session, whatever the headroom
    assert admission_hold([reading("sessions", 1, 1)], now=0, active=0, headroom=0.5) is None


def test_admission_waits_for_a_window_reset_while_only_the_headroom_remains():
    tokens = [reading("tokens", 1000, 100, reset=5.0, at=10.0), reading("requests", 50, 40, 1.0, 10.0)]
    assert admission_hold(tokens, now=11.0, active=0, headroom=0.1) == 15.0
    assert admission_hold(tokens, now=11.0, active=0, headroom=0.05) is None
    assert admission_hold(tokens, now=15.0, active=0, headroom=0.1) is None  # reset since


async def test_the_gate_probes_then_paces_and_a_release_wakes_it(autojump_clock):
    tracker = RateLimitTracker()
    gate = AdmissionGate(RateLimits(headroom=0, pace=True),
                         lambda model: (tracker.readings("k", model), tracker.learned("k", model)))
    times: list[float] = []

    async def admit() -> None:
        await gate.admit("m")
        times.append(trio.current_time())

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(admit)
        await trio.sleep(1.0)
        assert gate.active == 1  # the probe; the others wait for what it learns
        tracker.observe("k", "m", [{"name": "sessions", "limit": 2, "remaining": 1, "reset_seconds": 0}],
                        trio.current_time())
        await trio.sleep(1.0)
        assert gate.active == 2
        gate.release()
    assert gate.admitted == 3 and gate.delayed == 2
    # an announcement is noticed at the gate's next look (within RECHECK_S); a release at once
    offsets = [round(t - start, 2) for t in times]
    assert offsets[0] == 0.0 and 1.0 <= offsets[1] <= 1.0 + RECHECK_S and offsets[2] == 2.0


async def test_without_any_announcement_the_probe_ends_after_its_time(autojump_clock):
    gate = AdmissionGate(RateLimits(pace=True), lambda model: ([], None), probe_s=3.0)
    start = trio.current_time()
    await gate.admit()
    await gate.admit()
    assert trio.current_time() - start == pytest.approx(3.0, abs=0.3)


async def test_an_unpaced_gate_only_counts(autojump_clock):
    gate = AdmissionGate(RateLimits(pace=False), lambda model: ([reading("sessions", 1, 0)], None))
    assert await gate.admit() == 0 and await gate.admit() == 0
    assert gate.active == 2 and gate.delayed == 0


BASE = """\
name: x
populations: [{name: p, script: s, sessions: 1}]
scripts: {s: [{say: hi}]}
"""


def test_rate_limits_in_a_scenario_file_and_back():
    scenario = load_scenario_text(BASE + "rate_limits: {headroom: 10%, max_concurrent: 4}\n")
    assert scenario.rate_limits == RateLimits(headroom=0.1, pace=True, max_concurrent=4)
    assert load_scenario_text(dump_scenario_text(scenario)) == scenario
    assert load_scenario_text(BASE + "rate_limits: {headroom: 0.25}\n").rate_limits.headroom == 0.25
    assert load_scenario_text(BASE).rate_limits is None


@pytest.mark.parametrize(("text", "message"), [
    ("rate_limits: {headroom: 100%}", "f.yaml:4:25: rate_limits.headroom: must be at least 0% and below 100%"),
    ("rate_limits: {headroom: 10}", "f.yaml:4:25: rate_limits.headroom: a fraction below 1 (or write a percentage: 10%)"),
    ("rate_limits: {pace: maybe}", "f.yaml:4:21: rate_limits.pace: expected true or false"),
    ("rate_limits: {max_concurrent: 0}", "f.yaml:4:31: rate_limits.max_concurrent: must be >= 1"),
    ("rate_limits: {headrom: 10%}", "f.yaml:4:15: rate_limits.headrom: unknown key 'headrom'; did you mean 'headroom'?"),
])
def test_rate_limits_errors_name_file_line_and_field(text: str, message: str):
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(BASE + text + "\n", "f.yaml")
    assert str(info.value).startswith(message)


def test_server_fault_limits_reach_the_fault_plan():
    from standin import FaultPlan

    scenario = load_scenario_text(BASE + "target:\n  faults: {max_concurrent_sessions: 3, "
                                  "tokens_per_minute: 1000, mints_per_minute: 2}\n")
    plan = FaultPlan(**scenario.target.faults.plan_fields(0))
    assert (plan.max_concurrent_sessions, plan.tokens_per_minute, plan.mints_per_minute) == (3, 1000, 2)
    assert load_scenario_text(dump_scenario_text(scenario)) == scenario
