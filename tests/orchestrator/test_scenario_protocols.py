"""A scenario's populations may speak different protocols (issue 11): ``protocol: live`` is
checked at load time, and a mixed run's results and report compare the populations, also when
the run is split over worker processes."""

from __future__ import annotations

import json

import pytest

from orchestrator.cli import main
from orchestrator.readout import population_rows

SCENARIO = """\
name: mixed
seed: 4
duration_limit: 30s
target: embedded
session:
  output_modalities: [audio]
populations:
  - {name: rt, protocol: realtime, script: talk, sessions: 3}
  - {name: lv, protocol: live, script: talk, sessions: 3}
scripts:
  talk:
    - say: One short fact please.
    - say: And another one.
faults:
  - {at: 0.5s, action: drop_connections, percent: 100}
thresholds:
  - sessions.failed == 0
"""


@pytest.mark.parametrize("workers", [None, 2])
def test_mixed_protocols_run_and_the_report_compares_them(tmp_path, capsys, workers):
    path = tmp_path / "mixed.yaml"
    path.write_text(SCENARIO)
    args = ["run", str(path), "--out", str(tmp_path / "out"), "-q"]
    if workers:
        args += ["--workers", str(workers)]
    assert main(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    pops = results["populations"]
    assert {n: (p["protocol"], p["transport"]) for n, p in pops.items()} == {
        "rt": ("realtime", "websocket"), "lv": ("live", "websocket")}
    for name in ("rt", "lv"):
        counters = pops[name]["summary"]["counters"]
        assert counters["sessions.started"] == 3 and counters["turns.completed"] == 6
    total = results["summary"]["counters"]["turns.completed"]
    assert total == sum(p["summary"]["counters"]["turns.completed"] for p in pops.values())
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'id="populations"' in page
    headers, rows = population_rows(pops)
    for row in rows:
        assert all(f">{cell}<" in page for cell in row[:4]), row
    summary = capsys.readouterr().out
    assert "by population:" in summary and " live " in summary


def test_live_population_over_sip_is_refused_at_validate(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(SCENARIO.replace("{name: lv, protocol: live,", "{name: lv, protocol: live, transport: sip,"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "populations[1].protocol" in err and "websocket or webrtc" in err
