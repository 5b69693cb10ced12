"""Admission under an enforced concurrency limit, over loopback: the embedded server refuses a
session over ``max_concurrent_sessions`` (``rate_limit_exceeded``, close 1013) and announces the
limit in ``rate_limits.updated`` (its ``sessions`` entry). With ``rate_limits: {pace: true}`` the
runner's gate probes with one session until the first announcement, then keeps the sessions it
admits at the limit less the headroom: no connection is refused. Without pacing the same load is
refused, the refusals are counted as ``rate_limited.connections`` (not as errors), and a
threshold on them fails the run (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main

LIMIT = 3
SESSIONS = 8


def scenario(pace: str) -> str:
    return f"""\
name: admission
duration_limit: 60s
target:
  faults: {{max_concurrent_sessions: {LIMIT}}}
session:
  output_modalities: [text]
  turn_detection: null
{pace}
populations:
  - {{name: users, script: chat, sessions: {SESSIONS}}}
scripts:
  chat:
    - say: hello
    - pause: 400ms
    - say: again
thresholds:
  - rate_limited.connections == 0
"""


def run(tmp_path: Path, pace: str) -> tuple[int, dict, str]:
    path = tmp_path / "s.yaml"
    path.write_text(scenario(pace))
    out = tmp_path / "out"
    code = main(["run", str(path), "--quiet", "--out", str(out)])
    return code, json.loads((out / "results.json").read_text()), (out / "report.html").read_text()


def test_paced_admission_stays_under_the_announced_limit(tmp_path: Path) -> None:
    code, results, html = run(tmp_path, "rate_limits: {headroom: 0%, pace: true}")
    counters = results["summary"]["counters"]
    assert code == 0, results["thresholds"]
    assert counters["rate_limited.connections"] == 0
    assert counters["sessions.completed"] == SESSIONS and counters["errors"] == 0
    # the gate held sessions back, and learned the limit from the announcement
    assert counters["admission.delayed"] >= SESSIONS - LIMIT
    seen = results["rate_limits"]["seen"]
    assert seen["updates"] >= SESSIONS
    [limits] = seen["limits"].values()
    assert limits["sessions"]["limit"] == LIMIT
    admission = results["rate_limits"]["admission"]
    assert admission == {"pace": True, "headroom": 0.0, "max_concurrent": LIMIT,
                         "max_concurrent_from": "announced", "admitted": SESSIONS,
                         "delayed": counters["admission.delayed"]}
    assert "Rate limits" in html and "announced" in html


@pytest.mark.parametrize("pace", ["", "rate_limits: {pace: false}"])
def test_unpaced_refusals_are_counted_reported_and_fail_a_threshold(tmp_path: Path, pace: str) -> None:
    code, results, html = run(tmp_path, pace)
    counters = results["summary"]["counters"]
    assert code == 1 and results["verdict"] == "fail"
    assert counters["rate_limited.connections"] >= SESSIONS - LIMIT
    # their own category: not errors, not server errors of another kind
    assert counters.get("server_errors.rate_limit_exceeded") == counters["rate_limited.connections"]
    assert counters["errors"] == counters["sessions.failed"]
    [threshold] = results["thresholds"]
    assert not threshold["passed"] and threshold["observed"] == counters["rate_limited.connections"]
    assert results["populations"]["users"]["summary"]["counters"]["rate_limited.connections"] >= 1
    assert results["rate_limits"]["seen"]["refusals"]["connections"] == counters["rate_limited.connections"]
    assert "Rate limits" in html and "rate_limited.connections" in html
