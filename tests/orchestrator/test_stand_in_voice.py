"""How the embedded stand-in sounds, as a scenario and ``rtfleet serve`` choose it:
``target: {voice: tone|speech|speech:VOICE}`` and ``--voice``; bad values name file, line and
field (or exit 2 naming the option), a missing espeak-ng says what to install, and the choice
reaches the server's model (with the scenario's seed for the rules' timing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.scenario import ScenarioError, load_scenario_text
from orchestrator.scenario.loader import dump_scenario_text
from orchestrator.scenario.model import EmbeddedTarget
from orchestrator.scenario.stand_in import stand_in_model

REST = """\
session: {output_modalities: [text], turn_detection: null}
populations: [{name: p, script: s, sessions: 1}]
scripts: {s: [{say: hello}]}
"""
RULES = Path(__file__).resolve().parents[2] / "scenarios" / "voice" / "weather-rules.yaml"


@pytest.mark.parametrize("target, where, words", [
    ("target:\n  voice: loud", "v.yaml:3:10: target.voice", "unknown voice 'loud': expected tone, speech"),
    ("target:\n  voice: 'speech:'", "v.yaml:3:10: target.voice", "unknown voice 'speech:'"),
    ("target: {url: 'wss://x', voice: speech}", "v.yaml:2:26: target.voice",
     "is for the embedded target only (it has no url)"),
    ("target: {url: 'wss://x', model: r.yaml}", "v.yaml:2:26: target.model",
     "is for the embedded target only (it has no url)"),
])
def test_a_bad_voice_names_file_line_and_field(target, where, words):
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(f"name: t\n{target}\n{REST}", "v.yaml")
    assert str(caught.value).startswith(where) and words in str(caught.value)


def test_the_voice_loads_round_trips_and_defaults_to_the_tone():
    assert load_scenario_text(f"name: t\n{REST}", "v.yaml").target == EmbeddedTarget()
    scenario = load_scenario_text(f"name: t\ntarget: {{voice: 'speech:en-gb'}}\n{REST}", "v.yaml")
    assert scenario.target.voice == "speech:en-gb"
    assert load_scenario_text(dump_scenario_text(scenario), "again.yaml").target == scenario.target
    assert stand_in_model(EmbeddedTarget(), 1) is None  # the echo model and the tone: nothing to build


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")
def test_the_target_builds_a_speaking_rules_model_seeded_by_the_scenario():
    from standin.speech import SpeechVoice

    config = stand_in_model(EmbeddedTarget(model=RULES, voice="speech:en-gb"), seed=42)
    assert isinstance(config.voice, SpeechVoice) and config.voice.voice == "en-gb"
    assert config.rules.timing.seed == 42  # the file gives no seed: the scenario's
    again = stand_in_model(EmbeddedTarget(model=RULES), seed=42)
    assert again.voice is None  # the tone
    assert config.rules.timing.session_rng().random() == again.rules.timing.session_rng().random()
    config.voice.close()


def test_a_missing_espeak_fails_the_run_input_and_serve_saying_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr("actors.speech.shutil.which", lambda name: None)
    with pytest.raises(ValueError) as caught:
        stand_in_model(EmbeddedTarget(voice="speech"), None)
    assert str(caught.value).startswith("target.voice: ") and "apt-get install espeak-ng" in str(caught.value)
    assert main(["serve", "--port", "0", "--voice", "speech"]) == 2
    err = capsys.readouterr().err
    assert "--voice: " in err and "apt-get install espeak-ng" in err and "rtfleet[voice]" in err


def test_serve_refuses_an_unknown_voice(capsys):
    assert main(["serve", "--port", "0", "--voice", "loud"]) == 2
    assert "--voice: unknown voice 'loud': expected tone, speech or speech:VOICE" in capsys.readouterr().err
