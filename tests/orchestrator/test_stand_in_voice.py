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


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")
async def test_rtfleet_serve_with_rules_and_speech_speaks_its_answer(tmp_path):
    import base64

    from actors.speech import synthesize
    from standin.testing import open_client
    from tests.orchestrator.serve_process import rtfleet_serve

    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - keywords: [book, table]\n    say: Your table is booked.\n"
        "timing: {first_audio: 100ms, words_per_second: 2.5}\n")
    async with rtfleet_serve("--model", str(tmp_path / "rules.yaml"), "--voice", "speech") as serve:
        assert "answers by the rules in" in serve.banner and "(spoken by espeak-ng)" in serve.banner
        async with open_client(serve.url, key=serve.key) as client:
            await client.recv()
            await client.send({"type": "session.update", "session": {
                "type": "realtime", "audio": {"input": {"turn_detection": None}}}})
            await client.send({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": "book a table"}]}})
            await client.send({"type": "response.create"})
            events = await client.recv_until("response.done")
    audio = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")
    assert audio == synthesize("Your table is booked.", rate=150, lead_ms=0, trail_ms=0)
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "Your table is booked."
