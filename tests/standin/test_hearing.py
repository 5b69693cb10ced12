"""The stand-in's ears (standin/hearing.py) on real espeak-ng speech and real pocketsphinx: a
phrase the rules listen for is heard as the rules wrote it, other speech (near misses
included) is heard as nothing, and the audio is prepared the same way every time."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or importlib.util.find_spec("pocketsphinx") is None,
    reason="needs the espeak-ng program (apt-get install espeak-ng) and pocketsphinx "
           "(pip install 'rtfleet[voice]')")

RULES = Path(__file__).resolve().parents[2] / "scenarios" / "voice" / "weather-rules.yaml"
PHRASES = ["What's the weather in Paris", "What's the weather in London", "book a table for two",
           "change my address", "turn off the lights", "I want my money back"]


@pytest.fixture(scope="module")
def hearing():
    from standin.hearing import Hearing

    return Hearing(PHRASES)


def spoken(text: str, voice: str = "en-us", rate: int = 160) -> np.ndarray:
    """``text`` as a scenario's speak: sends it (24 kHz, silence around it), as float samples."""
    from actors.speech import synthesize

    return np.frombuffer(synthesize(text, voice=voice, rate=rate), "<i2").astype(np.float32) / 32768


@pytest.mark.parametrize("said, heard, voice, rate", [
    ("What's the weather in Paris?", "What's the weather in Paris", "en-us", 160),
    ("what's the weather in london", "What's the weather in London", "en-gb", 190),
    ("Book a table for two.", "book a table for two", "en-us", 150),
    ("Change my address.", "change my address", "en-gb", 150),
])
def test_a_phrase_it_listens_for_is_heard_as_the_rules_wrote_it(hearing, said, heard, voice, rate):
    assert hearing.hear(spoken(said, voice, rate), 24_000) == heard


@pytest.mark.parametrize("said", [
    "change my password",        # one word off "change my address"
    "turn off the radio",        # one word off "turn off the lights"
    "turn on the radio",         # two words off "turn off the lights"
    "book a table for four",     # the last word off "book a table for two"
    "what's the weather like",   # a phrase's beginning
    "I want my money",           # a phrase cut short
    "the quick brown fox jumps over the lazy dog",
])
def test_other_speech_is_heard_as_nothing(hearing, said):
    assert hearing.hear(spoken(said), 24_000) is None


def test_a_g711_call_is_heard_at_8_khz(hearing):
    from actors.proto.audio import resample_rational
    from actors.speech import synthesize
    from standin.model.audio import AudioFormat

    mulaw = AudioFormat("audio/pcmu")
    narrow = np.frombuffer(resample_rational(synthesize("I want my money back"), 24_000, 8_000), "<i2") / 32768
    assert hearing.hear(mulaw.decode(mulaw.encode(narrow)), 8_000) == "I want my money back"


def test_a_transcript_is_a_phrase_whatever_its_unstressed_words():
    from standin.hearing import match_key

    def key(text):
        return match_key(text.casefold().split())

    assert key("what weather in london") == key("What's the weather in London")  # 's and the lost
    assert key("what time") == key("what time is it")
    assert key("I want my money") != key("I want my money back")
    assert key("what is my flight") != key("what is my flight status")
    assert key("turn on the lights") != key("turn off the lights")
    assert key("it is") == ("it", "is") and key("") == ()  # nothing left: word for word


def test_what_was_heard_before_does_not_change_what_is_heard(hearing):
    """pocketsphinx carries its noise estimate from one utterance to the next; the stand-in's one
    Hearing serves every session, so each utterance must start afresh. (Without that, this
    mu-law en-gb utterance was heard as "two in off the lights" after the fox.)"""
    from actors.proto.audio import g711_decode
    from actors.speech import synthesize_g711

    lights = np.frombuffer(g711_decode(0, synthesize_g711("turn off the lights", 0, voice="en-gb", rate=150)),
                           "<i2") / 32768
    others = [spoken("the quick brown fox jumps over the lazy dog"), spoken("I want my money back", "en-gb"),
              np.zeros(24_000)]
    alone = hearing.hear(lights, 8_000)
    assert alone == "turn off the lights"
    for other in others:
        hearing.hear(other, 24_000)
        assert hearing.hear(lights, 8_000) == alone


@pytest.mark.parametrize("law", [0, 8], ids=["pcmu", "pcma"])
@pytest.mark.parametrize("session_rate", [24_000, 8_000])
def test_the_round_trip_question_on_a_call_is_heard_at_either_law_and_session_rate(law, session_rate):
    """As a SIP call brings it: G.711 at 8 kHz, upsampled to 24 kHz for an audio/pcm session
    (the SIP path's AudioConverter) or kept at 8 kHz for a G.711 session; heard as it comes,
    with no line noise added (there was a -80 dBFS floor for the grammar recognizer)."""
    from actors.proto.audio import AudioConverter, g711_decode
    from actors.speech import synthesize_g711
    from standin.voice_model import rules_model_config

    config, _ = rules_model_config(RULES)
    pcm8 = g711_decode(law, synthesize_g711("What's the weather in Paris?", law))
    pcm = pcm8 if session_rate == 8_000 else AudioConverter(8000, 24000).process(pcm8)
    samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    assert config.hearing.hear(samples, session_rate) == "What's the weather in Paris"


def test_silence_and_too_little_audio_are_heard_as_nothing(hearing):
    assert hearing.hear(np.zeros(48_000, np.float32), 24_000) is None
    assert hearing.hear(spoken("turn off the lights")[:1_200], 24_000) is None  # 50 ms


def test_audio_is_cut_to_the_speech_over_a_noise_floor_the_same_every_time(hearing):
    x = spoken("change my address")  # 200 ms of zeros before, 400 ms after
    loud = np.flatnonzero(np.abs(x) > 0.01)
    speech_s = (loud[-1] - loud[0]) / 24_000
    pcm = hearing.prepare(x, 24_000)
    assert pcm.dtype == np.dtype("<i2")
    assert speech_s < len(pcm) / 16_000 < speech_s + 0.25  # the 100 ms pads, not the 600 ms of silence
    assert np.count_nonzero(pcm[:800]) > 760  # no digital silence left
    assert 0 < np.std(pcm[:800]) < 0.05 * np.std(pcm)  # a floor far below the speech
    assert np.array_equal(pcm, hearing.prepare(x, 24_000))


def test_without_pocketsphinx_it_says_what_to_install(monkeypatch):
    from standin.hearing import Hearing, HearingUnavailable

    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # import pocketsphinx raises ImportError
    with pytest.raises(HearingUnavailable, match=r"pip install 'rtfleet\[voice\]'"):
        Hearing(PHRASES)


def test_a_rules_file_with_no_word_to_hear_is_refused():
    from standin.hearing import Hearing

    with pytest.raises(ValueError, match="no phrase to listen for"):
        Hearing(["zzxqv"])
