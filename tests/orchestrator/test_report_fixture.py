"""The sample results at tests/fixtures/results-sample.json, and the script that makes it.

The sample is a simulated chaos run (20 WebSocket sessions, ramp/hold/drain, connection drops,
key expiry, key rejection, added latency and a server kill; one session gives up), recorded
with the real `MetricsRegistry`/`TimeSeries`/`Histogram` and thresholds evaluated by the real
`evaluate`, so it has exactly the shapes the runner writes. Regenerate it after a change to the
metrics formats with::

    python tests/orchestrator/test_report_fixture.py
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from orchestrator.metrics import Histogram, MetricsRegistry, TimeSeries, make_lookup
from orchestrator.scenario.thresholds import evaluate, parse_threshold

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results-sample.json"

SESSIONS = 20
TICK = 0.1
STARTED_AT = 1764015363.25
FAULTS = [  # (t, label)
    (20.0, "drop_connections 50%"),
    (40.0, "expire_keys"),
    (60.0, "drop_connections 100%"),
    (80.0, "reject_keys for 3s"),
    (95.0, "add_latency 250ms for 10s"),
    (110.0, "kill_server, restart after 2s"),
]
PHASES = [(0.0, "steady: ramp"), (10.0, "steady: hold"), (115.0, "steady: drain")]
THRESHOLDS = [
    "reconnect.success_rate == 1",
    "reconnect.attempts >= 10",
    "reconnect.duration p95 < 2s",
    "sessions.failed == 0",
    "turn.time_to_first_text p95 < 1.5s",
    "turn.time_to_first_audio p99 < 900ms",
    "errors < 100",
]
CONFIG = {
    "name": "chaos-reconnect",
    "seed": 42,
    "duration_limit": "3m",
    "target": {"kind": "embedded", "api_key": "[redacted]",
               "faults": {"expire_after": "45s", "latency": "20ms"}},
    "session": {"output_modalities": ["text"], "turn_detection": None},
    "populations": [{"name": "steady", "transport": "websocket", "script": "long_chat",
                     "phases": [{"name": "ramp", "duration": "10s", "concurrency": 20},
                                {"name": "hold", "duration": "105s", "concurrency": 20},
                                {"name": "drain", "duration": "10s", "concurrency": 0}]}],
    "scripts": {"long_chat": [{"repeat": 40, "steps": [{"say": "Tell me a one-line fact."},
                                                       {"pause": "2s"}]}]},
    "faults": [{"at": "20s", "action": "drop_connections", "percent": 50},
               {"at": "40s", "action": "expire_keys"},
               {"at": "60s", "action": "drop_connections", "percent": 100},
               {"at": "80s", "action": "reject_keys", "for": "3s"},
               {"at": "95s", "action": "add_latency", "ms": 250, "for": "10s"},
               {"at": "110s", "action": "kill_server", "restart_after": "2s"}],
    "thresholds": THRESHOLDS,
}


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(median), sigma)


def build_sample() -> dict[str, Any]:
    """Simulate the run in 0.1 s ticks (deterministic: one seeded `random.Random`)."""
    rng = random.Random(42)
    series = TimeSeries(interval=1.0, origin=0.0)
    marks: list[dict[str, Any]] = [{"t": t, "kind": "phase", "label": label} for t, label in PHASES]
    session_errors: list[dict[str, str]] = []
    sessions = [{"id": f"s-{i:02d}", "state": "pending", "due": i * 0.5, "turn": None,
                 "next_turn": 0.0, "dropped_at": 0.0, "attempts": 0} for i in range(SESSIONS)]
    episodes = recovered = 0
    faults = list(FAULTS)

    def error(s: dict[str, Any], t: float, message: str) -> None:
        series.inc("errors", t)
        marks.append({"t": round(t, 1), "kind": "error", "label": f"{s['id']}: {message}"})

    def drop(s: dict[str, Any], t: float) -> None:
        nonlocal episodes
        episodes += 1
        s.update(state="reconnecting", turn=None, dropped_at=t, attempts=0,
                 due=t + rng.uniform(0.3, 2.5))

    k = 0
    while True:
        t = round(k * TICK, 1)
        while faults and faults[0][0] <= t:
            _, label = faults.pop(0)
            series.inc("faults.injected", t)
            marks.append({"t": t, "kind": "fault", "label": label})
            connected = [s for s in sessions if s["state"] == "connected"]
            if label.startswith("drop_connections 50"):
                for s in rng.sample(connected, len(connected) // 2):
                    drop(s, t)
            elif label.startswith("drop_connections 100") or label.startswith("kill_server"):
                for s in connected:
                    drop(s, t)
            elif label == "expire_keys":
                for s in rng.sample(connected, 3):
                    error(s, t, "session expired (ephemeral key expired)")
                    drop(s, t)
            elif label.startswith("reject_keys"):
                for s in rng.sample(connected, 2):
                    error(s, t + 0.4, "key refresh rejected: HTTP 403")
                    drop(s, t + 0.4)
        latency = 0.25 if 95 <= t < 105 else 0.0
        for s in sessions:
            if s["state"] == "pending" and t >= s["due"]:
                s.update(state="connecting", since=t, due=t + _lognormal(rng, 0.09, 0.35))
                series.inc("sessions.started", t)
            elif s["state"] == "connecting" and t >= s["due"]:
                series.observe("connect.duration", s["due"] - s["since"], t)
                s.update(state="connected", next_turn=t + rng.uniform(0.2, 1.5))
            elif s["state"] == "reconnecting" and t >= s["due"]:
                series.inc("reconnect.attempts", t)
                server_down = 110 <= t < 112 or (80 <= t < 83)
                if s["id"] == "s-13" and t >= 110:
                    server_down = True
                if server_down or rng.random() < 0.03:
                    s["attempts"] += 1
                    reason = "connection refused" if t >= 110 else (
                        "key mint rejected: HTTP 403" if 80 <= t < 83 else "handshake timed out")
                    error(s, t, f"reconnect attempt {s['attempts']}: {reason}")
                    if s["attempts"] >= 6:
                        s["state"] = "error"
                        series.inc("sessions.failed", t)
                        message = f"gave up after {s['attempts']} reconnect attempts: {reason}"
                        session_errors.append({"session": s["id"], "error": message})
                        marks.append({"t": t, "kind": "error", "label": f"{s['id']}: {message}"})
                    else:
                        s["due"] = t + rng.uniform(0, min(4.0, 0.4 * 2 ** s["attempts"]))
                else:
                    connect = _lognormal(rng, 0.09, 0.35)
                    series.observe("connect.duration", connect, t)
                    series.observe("reconnect.duration", t + connect - s["dropped_at"], t)
                    series.inc("reconnect.succeeded", t)
                    recovered += 1
                    s.update(state="connected", next_turn=t + connect + rng.uniform(0.1, 0.8))
            elif s["state"] == "connected":
                turn = s["turn"]
                if turn is not None and t >= turn["done"]:
                    series.observe("turn.time_to_first_text", turn["ttft"], t)
                    series.observe("turn.time_to_first_audio", turn["ttfa"], t)
                    series.observe("turn.duration", turn["duration"], t)
                    series.inc("turns.completed", t)
                    s.update(turn=None, next_turn=t + 2.0 + rng.uniform(0, 0.4))
                elif turn is None and t >= 115:
                    s["state"] = "closed"
                    series.inc("sessions.completed", t)
                elif turn is None and t >= s["next_turn"]:
                    ttft = 0.02 + latency + _lognormal(rng, 0.17, 0.3)
                    ttfa = ttft + _lognormal(rng, 0.06, 0.3)
                    duration = ttfa + _lognormal(rng, 1.1, 0.2)
                    s["turn"] = {"ttft": ttft, "ttfa": ttfa, "duration": duration,
                                 "done": t + duration}
        if k % 10 == 9:  # the end of a one-second slot: sample the levels
            for state in ("connecting", "connected", "reconnecting", "error"):  # live states
                level = sum(s["state"] == state for s in sessions)
                series.set_gauge(f"sessions.{state}", level, t)
        if all(s["state"] in ("closed", "error") for s in sessions):
            break
        k += 1
    duration = t + 0.04

    run = series.total()
    run.gauges.clear()
    for state in ("connecting", "connected", "reconnecting", "error"):
        run.set_gauge(f"sessions.{state}", sum(s["state"] == state for s in sessions))
    run.set_gauge("reconnect.success_rate", recovered / episodes)
    lateness = run.histogram("audio.frame_lateness")
    for _ in range(20000):
        lateness.record(_lognormal(rng, 0.0015, 0.6))
    for _ in range(400):
        lateness.record(_lognormal(rng, 0.03, 0.4))
    run.inc("errors", 0)

    results = evaluate([parse_threshold(text) for text in THRESHOLDS],
                       make_lookup(run, elapsed=duration))
    counters = run.counters
    return {
        "format": 1,
        "rtfleet_version": "0.1.0",
        "scenario": {"name": "chaos-reconnect",
                     "description": "Connection drops and key expiry mid-run; reconnects must "
                                    "all succeed.",
                     "file": "scenarios/chaos-reconnect.yaml", "seed": 42, "config": CONFIG},
        "target": "embedded",
        "started_at": STARTED_AT,
        "finished_at": STARTED_AT + duration,
        "duration_s": duration,
        "verdict": "pass" if all(r.passed for r in results) else "fail",
        "thresholds": [{"expression": r.threshold.source_text, "observed": r.observed,
                        "passed": r.passed, "reason": r.reason} for r in results],
        "metrics": run.snapshot(),
        "timeline": series.snapshot(),
        "marks": sorted(marks, key=lambda m: m["t"]),
        "sessions": {"started": int(counters.get("sessions.started", 0)),
                     "completed": int(counters.get("sessions.completed", 0)),
                     "failed": int(counters.get("sessions.failed", 0)),
                     "errors": session_errors},
    }


def _dump(results: dict[str, Any]) -> str:
    return json.dumps(results, separators=(",", ":")) + "\n"


def test_fixture_is_what_the_script_makes() -> None:
    assert FIXTURE.read_text(encoding="utf-8") == _dump(build_sample()), (
        "tests/fixtures/results-sample.json is stale: "
        "run python tests/orchestrator/test_report_fixture.py"
    )


def test_fixture_is_small_and_reads_back() -> None:
    assert FIXTURE.stat().st_size < 200_000
    results = json.loads(FIXTURE.read_text(encoding="utf-8"))
    registry = MetricsRegistry.from_snapshot(results["metrics"])
    assert registry.snapshot() == results["metrics"]
    timeline = TimeSeries.from_snapshot(results["timeline"])
    assert timeline.snapshot() == results["timeline"]
    assert {"turn.time_to_first_text", "reconnect.duration", "audio.frame_lateness"} <= set(
        registry.histograms)
    assert isinstance(registry.histograms["turn.duration"], Histogram)
    assert results["verdict"] == "fail"
    assert {m["kind"] for m in results["marks"]} == {"phase", "fault", "error"}


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(_dump(build_sample()), encoding="utf-8")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes)")
