"""``rtfleet validate --estimate`` counts a ``speak`` step's audio as ``play`` counts a file's
(issue 18): its length estimated from the text at the step's rate, no espeak-ng needed."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from actors.speech import estimated_seconds
from orchestrator.scenario.estimate import estimate_scenario, speech_stand_in
from orchestrator.scenario.loader import load_scenario

TEXT = "What's the weather in Paris?"


def _scenario(tmp_path: Path, step: str, turn_detection: str = "null") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"""
name: speak-estimate
duration_limit: 1m
session:
  turn_detection: {turn_detection}
populations:
  - {{name: callers, transport: websocket, script: s, sessions: 10}}
scripts:
  s:
    - {step}
""")
    return path


def _one(path: Path):
    (population,) = estimate_scenario(load_scenario(path)).populations
    return population


def _wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24_000)
        w.writeframes(pcm)
    return path


def test_a_speak_step_counts_as_playing_audio_of_its_estimated_length(tmp_path):
    spoken = _one(_scenario(tmp_path, f'speak: "{TEXT}"'))
    wav = _wav(tmp_path / "same.wav", speech_stand_in(TEXT, 160))
    played = _one(_scenario(tmp_path, f"play: {wav}"))
    assert spoken.counts_per_session["usage.input_audio_tokens"] > 0
    assert spoken.counts_per_session == played.counts_per_session
    assert spoken.session_seconds == pytest.approx(played.session_seconds)
    assert spoken.turns_per_session == 1
    assert spoken.session_seconds >= estimated_seconds(TEXT)  # streamed in real time
    assert spoken.cost is not None and spoken.cost == pytest.approx(10 * spoken.cost_per_session)


def test_longer_and_slower_speech_costs_more(tmp_path):
    base = _one(_scenario(tmp_path, f'speak: "{TEXT}"'))
    longer = _one(_scenario(tmp_path, f'speak: "{TEXT} And in London, and in Tokyo tomorrow?"'))
    slower = _one(_scenario(tmp_path, f'speak: {{text: "{TEXT}", rate: 100}}'))
    audio = "usage.input_audio_tokens"
    assert longer.counts_per_session[audio] > base.counts_per_session[audio]
    assert slower.counts_per_session[audio] > base.counts_per_session[audio]
    assert longer.cost > base.cost and slower.cost > base.cost


def test_with_server_vad_the_spoken_turn_is_detected_and_answered(tmp_path):
    spoken = _one(_scenario(tmp_path, f'speak: "{TEXT}"', turn_detection="server_vad"))
    assert spoken.turns_per_session == 1
    assert spoken.counts_per_session["usage.input_audio_tokens"] > 0


def test_the_stand_in_audio_is_as_long_as_the_estimate():
    pcm = speech_stand_in(TEXT, 160)
    assert len(pcm) / 48_000 == pytest.approx(estimated_seconds(TEXT, rate=160), abs=1 / 24_000)
