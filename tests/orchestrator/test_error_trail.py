"""A failed session's error record carries its trail: the last events it saw (deltas aside),
so a turn that timed out in a long run can be explained from results.json and the report."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.cli import main

SCENARIO = """\
name: trail
session:
  output_modalities: [text]
  turn_detection: null
populations:
  - {name: p, script: s, sessions: 1}
scripts:
  s:
    - say: hello there
    - wait_response: {timeout: 300ms}
thresholds:
  - sessions.failed == 0
"""


def test_a_timed_out_turn_records_what_the_session_saw_last(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    code = main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == 1
    [error] = results["sessions"]["errors"]
    assert error["error"] == "no response.done within 0.3s"
    whats = [line.split(" ", 1)[1] for line in error["trail"]]
    times = [float(line.split("s ", 1)[0].lstrip("+")) for line in error["trail"]]
    assert times == sorted(times) and times[0] >= 0
    # the connection, then the first turn answered in full; no delta is kept
    assert "state connected (session.created)" in whats and "session.created" in whats
    assert whats.index("sent conversation.item.create") < whats.index("sent response.create") \
        < whats.index("response.created") < whats.index("response.done")
    assert not any(w.endswith(".delta") for w in whats)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "last events" in html and "response.done" in html


def test_a_key_pasted_into_the_description_is_redacted_in_every_output(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    key = "sk-proj-abcdefghijklmnop1234"
    path.write_text(SCENARIO.replace("name: trail", f"name: trail\ndescription: uses {key} for now"))
    main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    for name in ("results.json", "report.html"):
        text = (tmp_path / "out" / name).read_text()
        assert key not in text and "uses [redacted] for now" in text, name
