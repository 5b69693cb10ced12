"""The stand-in's GPT-Live model hears words and answers by rules (issue 18), sans-I/O: a
`LiveSession` with the rules model of ``scenarios/voice`` gets espeak-ng speech as
``session.input_audio.append`` events; the utterance the VAD ends is recognized (pocketsphinx)
and becomes the ``session.input_transcript.delta``; a ``say`` rule answers with the heard
city, a ``call`` rule becomes a client delegation answered by the rule's ``then``; nothing
heard falls back to ``"audio of N ms"`` and the rules' default."""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from standin.model.events import IdFactory
from standin.model.live import LiveSession
from standin.model.realtime import ModelConfig

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or importlib.util.find_spec("pocketsphinx") is None,
    reason="needs the espeak-ng program (apt-get install espeak-ng) and pocketsphinx "
           "(pip install 'rtfleet[voice]')")

VOICE = Path(__file__).resolve().parents[2] / "scenarios" / "voice"
FRAME = 960  # 20 ms of 24 kHz PCM16


def _session(rules: str) -> LiveSession:
    from standin.voice_model import rules_model_config

    config, note = rules_model_config(VOICE / rules, ModelConfig(pace=0.0))
    assert note is None and config.hearing is not None
    session = LiveSession(config, IdFactory(), 0.0)
    started = session.receive_text(json.dumps({"type": "session.start",
                                               "session": {"model": "gpt-live-1"}}), 0.0)
    assert [e["type"] for e in started] == ["session.started"]
    return session


def _speak(session: LiveSession, pcm: bytes, now: float = 0.0) -> tuple[list[dict], float]:
    """Append ``pcm`` then 1 s of silence in 20 ms events; every event out, and the clock."""
    out = []
    audio = pcm + bytes(24_000 * 2)
    for offset in range(0, len(audio), FRAME):
        now += 0.02
        out += session.receive_text(json.dumps({
            "type": "session.input_audio.append",
            "audio": base64.b64encode(audio[offset:offset + FRAME]).decode()}), now)
    out += session.handle_timer(now + 60)
    return out, now + 60


def _said(events: list[dict]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "session.output_transcript.delta")


def _heard(events: list[dict]) -> list[str]:
    return [e["delta"] for e in events if e["type"] == "session.input_transcript.delta"]


def test_a_say_rule_answers_with_the_city_heard():
    from actors.speech import synthesize

    session = _session("weather-live-rules.yaml")
    events, _ = _speak(session, synthesize("What's the weather in London?"))
    assert _heard(events) == ["What's the weather in London"]
    assert _said(events).split() == "It is sunny in London today.".split()
    assert session.history[-2:] == [{"role": "user", "text": "What's the weather in London"},
                                    {"role": "assistant", "text": "It is sunny in London today."}]


def test_a_call_rule_delegates_to_the_client_and_its_then_speaks_the_result():
    from actors.speech import synthesize

    session = _session("weather-rules.yaml")
    events, now = _speak(session, synthesize("What's the weather in Paris?"))
    assert _heard(events) == ["What's the weather in Paris"]
    delegations = [e for e in events if e["type"] == "session.delegation.created"]
    assert len(delegations) == 1 and _said(events) == ""
    answer = session.receive_text(json.dumps({
        "type": "session.commentary.append", "content": "sunny, 21 degrees",
        "delegation_id": delegations[0]["delegation"]["id"]}), now)
    answer += session.handle_timer(now + 60)
    assert _said(answer).split() == "It is sunny, 21 degrees in Paris today.".split()


def test_what_the_rules_do_not_listen_for_is_audio_of_n_ms_and_the_default_answers():
    session = _session("weather-live-rules.yaml")
    t = np.arange(24_000) / 24_000
    hum = (np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes()  # 1 s, no words
    events, _ = _speak(session, bytes(4800) + hum)
    heard = _heard(events)
    assert len(heard) == 1 and heard[0].startswith("audio of ") and heard[0].endswith(" ms")
    assert _said(events).split() == "Sorry, I did not catch that.".split()


def test_audio_kept_for_hearing_stays_bounded_while_nobody_speaks():
    session = _session("weather-live-rules.yaml")
    for i in range(500):  # 10 s of silence
        session.receive_text(json.dumps({"type": "session.input_audio.append",
                                         "audio": base64.b64encode(bytes(FRAME)).decode()}), i * 0.02)
    kept = sum(len(chunk) for chunk in session._kept.chunks)
    assert kept <= 24_000 * 1.1  # at most ~1 s (the next utterance's padding needs 300 ms)
