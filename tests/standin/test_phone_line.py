"""A SIP call's session hears through the phone line (standin/sessions/phone_line.py): the
committed audio gets a seeded line-noise floor at the recognizer's 16 kHz before the recognizer
hears it, so that G.711's digital silence does not make it miss band-limited words."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest

from actors.proto.audio import AudioConverter, g711_decode
from standin.model.realtime import ModelConfig
from standin.sessions.phone_line import PhoneLineHearing, phone_line_config

RULES = Path(__file__).resolve().parents[2] / "scenarios" / "voice" / "weather-rules.yaml"


@attrs.define
class _Ear:
    """Records what a recognizer would be given."""

    phrases: list[str] = attrs.field(factory=lambda: ["hello"])
    got: list[tuple[np.ndarray, int]] = attrs.field(factory=list)

    def hear(self, samples, rate):
        self.got.append((np.array(samples), rate))
        return "hello"


@pytest.mark.parametrize("rate", [8_000, 24_000])
def test_the_recognizer_gets_the_audio_at_16_khz_with_a_seeded_noise_floor(rate):
    ear = _Ear()
    line = PhoneLineHearing(ear)
    assert line.hear(np.zeros(rate), rate) == "hello" and line.phrases == ["hello"]
    line.hear(np.zeros(rate), rate)
    (first, at), (second, _) = ear.got
    assert at == 16_000 and len(first) == 16_000
    rms_db = 20 * np.log10(np.sqrt(np.mean(first ** 2)))
    assert -81 < rms_db < -79  # the -80 dBFS default
    assert np.array_equal(first, second)  # the same utterance is heard the same way


def test_the_words_keep_their_level_under_the_floor():
    ear = _Ear()
    t = np.arange(16_000) / 16_000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    PhoneLineHearing(ear, noise_dbfs=-60).hear(tone, 16_000)
    (heard, _), = ear.got
    assert np.max(np.abs(heard - tone)) < 0.01


def test_only_a_session_that_hears_is_given_the_phone_line():
    plain = ModelConfig()
    assert phone_line_config(plain) is plain
    hearing = ModelConfig(hearing=_Ear())
    wrapped = phone_line_config(hearing)
    assert isinstance(wrapped.hearing, PhoneLineHearing) and wrapped.hearing.inner is hearing.hearing
    assert phone_line_config(wrapped) is wrapped  # not twice


@pytest.mark.skipif(shutil.which("espeak-ng") is None or importlib.util.find_spec("pocketsphinx") is None,
                    reason="needs the espeak-ng program (apt-get install espeak-ng) and pocketsphinx "
                           "(pip install 'rtfleet[voice]')")
@pytest.mark.parametrize("law", [0, 8], ids=["pcmu", "pcma"])
@pytest.mark.parametrize("session_rate", [24_000, 8_000])
def test_the_round_trip_question_is_heard_through_either_law_at_either_session_rate(law, session_rate):
    from actors.speech import synthesize_g711
    from standin.voice_model import rules_model_config

    config, _ = rules_model_config(RULES)
    line = phone_line_config(config).hearing
    pcm8 = g711_decode(law, synthesize_g711("What's the weather in Paris?", law))
    pcm = pcm8 if session_rate == 8_000 else AudioConverter(8000, 24000).process(pcm8)
    samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    assert line.hear(samples, session_rate) == "What's the weather in Paris"
