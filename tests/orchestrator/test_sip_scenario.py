"""``transport: sip`` populations: phone calls into the embedded server's SIP side, driven by a
scenario through the CLI, and the loader's errors for what a phone call cannot do."""

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.scenario import ScenarioError, load_scenario, load_scenario_text

ROOT = Path(__file__).resolve().parents[2]
WAV = ROOT / "scenarios" / "audio" / "hello.wav"


def test_sip_calls_scenario_runs_through_the_cli(tmp_path, capsys):
    """3 calls: dial -> webhook -> accept -> sideband; a text turn and a spoken (RTP, VAD) turn each."""
    code = main(["run", str(ROOT / "scenarios/sip-calls.yaml"), "--quiet", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    assert code == 0, (out, results["thresholds"], results.get("errors"))
    assert results["sessions"]["completed"] == 3 and results["sessions"]["failed"] == 0
    counters, histograms = results["summary"]["counters"], results["summary"]["histograms"]
    assert counters["turns.completed"] == 6 and counters["errors"] == 0
    # the same turn metrics as any transport: first audio is the call's playout start
    assert histograms["turn.time_to_first_audio"]["count"] == 6
    assert histograms["turn.duration"]["count"] == 6
    assert histograms["connect.duration"]["count"] == 3


def _sip(script: str, *, session: str = "turn_detection: {type: server_vad}", target: str = "embedded") -> str:
    return f"""name: sip
target: {target}
session:
  {session}
populations:
  - name: callers
    transport: sip
    script: s
    sessions: 1
scripts:
  s:
{script}"""


@pytest.mark.parametrize("script, line, field", [
    ("    - say: hi\n    - send: {type: input_audio_buffer.append, audio: AAAA}\n", 13, "scripts.s[1].send"),
    ("    - repeat: 2\n      steps:\n        - send: {type: input_audio_buffer.append, audio: AAAA}\n",
     14, "scripts.s[0].steps[0].send"),
])
def test_audio_appends_on_a_call_are_file_line_field_errors(script, line, field):
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(_sip(script), "calls.yaml")
    error = caught.value
    assert (error.file, error.line, error.field) == ("calls.yaml", line, field), str(error)
    assert str(error).startswith(f"calls.yaml:{line}:")
    assert "input_audio_buffer.append is not supported on a phone call" in str(error)
    assert "population 'callers' calls over sip" in str(error) and "use play" in str(error)


def test_a_sip_population_needs_the_embedded_target():
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(_sip("    - say: hi\n", target='{url: "wss://example.invalid"}'), "calls.yaml")
    assert caught.value.field == "populations[0].transport" and caught.value.line == 7
    assert "needs the embedded target" in str(caught.value)


def test_manual_commit_and_barge_in_run_over_a_call(tmp_path, capsys):
    """Without VAD the caller's RTP turn is committed after its last frame; barge_in on a call is
    response.cancel + output_audio_buffer.clear (the service stops the playout); it returns once
    the interrupted response is done (cancelled), so no wait_response follows it."""
    path = tmp_path / "manual.yaml"
    path.write_text(_sip(f"""    - play: {WAV}
    - wait_response: 10s
    - say: "tell me a long story please, with many many words in it"
      wait: false
    - barge_in: 200ms
""", session="turn_detection: null") + "\nthresholds: [errors == 0, turns.completed >= 2]\n")
    code = main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == 0, (capsys.readouterr().out, results["thresholds"], results.get("errors"))
    counters = results["summary"]["counters"]
    assert counters["turns.completed"] == 2 and counters["turns.barged_in"] == 1
    assert results["sessions"]["completed"] == 1


def test_the_example_validates_and_a_text_only_sip_script_loads():
    scenario = load_scenario(ROOT / "scenarios/sip-calls.yaml")
    assert scenario.populations[0].transport.value == "sip"
    loaded = load_scenario_text(_sip("    - say: hi\n    - wait_response: 5s\n", session="turn_detection: null"),
                                "calls.yaml")
    assert loaded.populations[0].transport.value == "sip"
