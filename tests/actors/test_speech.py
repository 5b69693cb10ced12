"""Speech synthesis for ``speak`` (issue 18): a phone call's G.711 at 8 kHz straight from
espeak-ng, cached per format; the length estimate a cost estimate uses without espeak-ng."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from actors.proto.audio import g711_decode
from actors.speech import estimated_seconds, synthesize, synthesize_g711

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="needs the espeak-ng program (apt-get install espeak-ng)")

TEXTS = ["What's the weather in Paris?", "Hi", "Reset my password",
         "Book a table for two at seven tonight, please.",
         "I would like to cancel my order and get a refund for the broken item that arrived yesterday."]


@needs_espeak
@pytest.mark.parametrize("law", [0, 8], ids=["pcmu", "pcma"])
def test_a_call_gets_the_words_as_8_khz_g711_of_its_law(law):
    text = "What's the weather in Paris?"
    g711 = synthesize_g711(text, law)
    pcm8 = np.frombuffer(synthesize(text, sample_rate=8000), "<i2").astype(float)
    pcm24 = synthesize(text)
    assert len(g711) == len(pcm8) == len(pcm24) // 2 // 3  # one byte a sample, same duration
    decoded = np.frombuffer(g711_decode(law, g711), "<i2").astype(float)
    # G.711 keeps the waveform (about 38 dB SNR on speech): the law's quantisation, nothing else
    snr = 10 * np.log10(np.sum(pcm8 ** 2) / np.sum((decoded - pcm8) ** 2))
    assert snr > 30
    assert decoded[:8000 * 200 // 1000].max() <= 8  # the leading 200 ms are silence
    assert synthesize_g711(text, law) is g711  # cached per format
    assert synthesize_g711(text, 8 - law) != g711  # the other law is another entry


def test_a_payload_type_that_is_not_g711_is_refused():
    with pytest.raises(ValueError, match="not G.711"):
        synthesize_g711("hello", 111)


@needs_espeak
@pytest.mark.parametrize("rate", [120, 160, 200, 300])
def test_the_length_estimate_is_within_35_percent_of_espeak_ng(rate):
    for text in TEXTS:
        actual = len(synthesize(text, rate=rate)) / (24_000 * 2)
        assert abs(estimated_seconds(text, rate=rate) / actual - 1) <= 0.35, (text, rate, actual)


def test_the_length_estimate_grows_with_the_words_and_shrinks_with_the_rate():
    assert estimated_seconds("") == pytest.approx(0.6)  # the silences alone
    short, long = estimated_seconds("Hi"), estimated_seconds("Hi, what's the weather in Paris today?")
    assert 0.6 < short < long
    assert estimated_seconds(TEXTS[-1], rate=300) < estimated_seconds(TEXTS[-1], rate=120)
