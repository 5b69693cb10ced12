"""A scenario session whose server VAD has ``idle_timeout_ms``: after its answer, silence makes
the embedded server send ``input_audio_buffer.timeout_triggered`` and answer again; the driver
counts that answer as a turn of its own (started at the trigger)."""

import json

from orchestrator.cli import main

SCENARIO = """\
name: idle
session:
  output_modalities: [text]
  turn_detection: {type: server_vad, idle_timeout_ms: 200}
populations:
  - {name: p, script: s, sessions: 2}
scripts:
  s:
    - say: hello
    - wait_response: 5s        # the answer the idle timeout brings
thresholds:
  - errors == 0
  - turns.completed == 4
  - turn.duration count == 4
"""


def test_idle_timeout_answer_is_a_turn(tmp_path):
    path = tmp_path / "idle.yaml"
    path.write_text(SCENARIO)
    code = main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == 0, results["thresholds"]
    assert results["sessions"]["completed"] == 2
    # the idle turn is measured from the trigger: far shorter than the 200 ms of silence before it
    assert results["summary"]["histograms"]["turn.duration"]["max"] < 0.2
