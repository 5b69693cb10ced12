"""Fixtures for tests that run the fleet against the embedded server over loopback."""

import base64

import pytest

from standin.testing import pcm16_silence, pcm16_tone, split_chunks


def audio_turn_events(tone_ms: int = 600, silence_ms: int = 700) -> list[dict]:
    """input_audio_buffer.append events: silence, a 440 Hz tone, then silence (server VAD turn)."""
    pcm = pcm16_silence(200) + pcm16_tone(tone_ms) + pcm16_silence(silence_ms)
    return [{"type": "input_audio_buffer.append", "audio": base64.b64encode(c).decode()}
            for c in split_chunks(pcm)]


@pytest.fixture
def audio_turn():
    return audio_turn_events
