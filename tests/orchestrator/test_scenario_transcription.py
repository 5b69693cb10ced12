"""Transcription populations (``session_type: transcription``) and the ``wait_transcript`` step:
loading (bad uses name file, line and field), the example run against the embedded server, and a
transcript that never comes failing its session with the reason."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.scenario import (ScenarioError, WaitTranscript, dump_scenario_text, load_scenario,
                                   load_scenario_text)

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "scenarios" / "audio" / "hello.wav"


def scenario_text(steps: str, population: str = "session_type: transcription",
                  thresholds: str = "- errors == 0\n") -> str:
    return textwrap.dedent(f"""\
        name: t
        session:
          turn_detection: null
        populations:
          - {{name: p, script: s, sessions: 2, {population}}}
        scripts:
          s:
        """) + textwrap.indent(textwrap.dedent(steps), "    ") + "thresholds:\n" + textwrap.indent(thresholds, "  ")


def load_error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "scenarios/x.yaml")
    return info.value


def test_session_type_and_wait_transcript_load_and_dump_back_equal():
    scenario = load_scenario_text(scenario_text(f"""\
        - play: {HELLO}
        - wait_transcript: 5s
        - wait_transcript: {{timeout: 2s}}
        - wait_transcript
        """), "x.yaml")
    assert scenario.populations[0].session_type == "transcription"
    assert scenario.scripts["s"][1:] == (WaitTranscript(5.0), WaitTranscript(2.0), WaitTranscript())
    assert load_scenario_text(dump_scenario_text(scenario), "again.yaml") == scenario
    session = scenario.session.to_transcription_session()
    assert session == {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None,
        "transcription": {"model": "gpt-4o-transcribe"}}}}


@pytest.mark.parametrize(
    ("steps", "population", "line", "field", "words"),
    [
        ("- say: hi\n", "session_type: transcription", 8, "scripts.s[0].say", "not for a transcription"),
        ("- repeat: 2\n  steps:\n    - wait_response: 5s\n", "session_type: transcription", 10,
         "scripts.s[0].steps[0].wait_response", "use play, wait_transcript"),
        ("- wait_transcript: 1s\n", "session_type: transcription, transport: sip", 5,
         "populations[0].session_type", "websocket"),
        ("- wait_transcript: 1s\n", "session_type: transcription, protocol: live", 5,
         "populations[0].session_type", "protocol realtime"),
        ("- wait_transcript: 1s\n", "session_type: dictation", 5, "populations[0].session_type",
         "transcription"),
        ("- wait_transcript: {timeout: never}\n", "session_type: transcription", 8,
         "scripts.s[0].wait_transcript.timeout", "never"),
    ],
)
def test_bad_uses_name_file_line_and_field(steps, population, line, field, words):
    error = load_error(scenario_text(steps, population))
    assert (error.file, error.line, error.field) == ("scenarios/x.yaml", line, field), str(error)
    assert words in error.message, error.message


def run(tmp_path: Path, path: Path) -> tuple[int, dict]:
    code = main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    return code, json.loads((tmp_path / "out" / "results.json").read_text())


def test_the_example_transcribes_every_utterance_and_answers_only_the_voice_sessions(tmp_path):
    code, results = run(tmp_path, ROOT / "scenarios" / "transcription.yaml")
    assert code == 0, results["thresholds"]
    counters = results["summary"]["counters"]
    assert counters["transcripts.completed"] == 18 and counters["transcripts.missed"] == 0
    assert counters["turns.completed"] == 2  # only the voice sessions were answered
    histograms = results["summary"]["histograms"]
    assert histograms["transcription.latency"]["count"] == 18
    assert histograms["transcription.time_to_first_delta"]["count"] == 18
    assert results["populations"]["dictation"]["summary"]["counters"]["transcripts.completed"] == 16
    assert results["populations"]["voice"]["summary"]["counters"]["transcripts.completed"] == 2


def test_a_transcript_that_never_comes_fails_its_session(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    # input transcription is off in a voice session: its utterance is answered, never transcribed
    path.write_text(scenario_text(f"""\
        - play: {HELLO}
          realtime: false
        - wait_response: 5s
        - wait_transcript: 300ms
        """, "session_type: realtime"))
    code, results = run(tmp_path, path)
    assert code == 1 and results["sessions"]["failed"] == 2
    assert results["summary"]["counters"]["transcripts.missed"] == 2
    assert "no input transcript within 0.3s" in capsys.readouterr().out
