"""Audio formats of the realtime protocol, for the embedded server's deterministic model.

Three formats exist (PROTOCOL.md "Session fields that matter"): ``audio/pcm`` (16-bit signed
little-endian mono at 24 kHz) and G.711 ``audio/pcmu`` / ``audio/pcma`` (8 kHz, one byte a
sample). :class:`AudioFormat` converts between wire bytes and float samples in ``[-1, 1]``
(numpy), and :class:`Tone` makes the model's deterministic output audio.

G.711 is done with 256-entry tables: decoding per ITU-T G.711, encoding by the nearest table
value, which is exact for every value the decoder can produce and close enough for a test tone.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import attrs
import numpy as np

__all__ = ["AudioFormat", "Tone", "PCM_24K"]


def _ulaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.float32) / 32768.0


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    a = codes ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.float32) / 32768.0


_TABLES = {"audio/pcmu": _ulaw_table(), "audio/pcma": _alaw_table()}
# For encoding: table values sorted, and the code that produces each.
_SORTED = {kind: (np.sort(t), np.argsort(t).astype(np.uint8)) for kind, t in _TABLES.items()}


@attrs.frozen
class AudioFormat:
    """One of the protocol's audio formats, named by its ``type`` (``audio/pcm``, …)."""

    type: str = "audio/pcm"

    @classmethod
    def from_session(cls, fmt: Any) -> AudioFormat:
        """From a session ``format`` object; anything unknown falls back to PCM 24 kHz."""
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        return cls(kind) if kind in ("audio/pcmu", "audio/pcma") else PCM_24K

    @property
    def rate(self) -> int:
        return 24_000 if self.type == "audio/pcm" else 8_000

    @property
    def sample_width(self) -> int:
        return 2 if self.type == "audio/pcm" else 1

    @property
    def bytes_per_ms(self) -> float:
        return self.rate * self.sample_width / 1000.0

    def duration_ms(self, nbytes: int) -> float:
        return nbytes / self.bytes_per_ms

    def decode(self, data: bytes) -> np.ndarray:
        """Wire bytes to float32 samples in [-1, 1]; a trailing odd byte of PCM16 is ignored."""
        if self.type == "audio/pcm":
            usable = len(data) - len(data) % 2
            return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
        return _TABLES[self.type][np.frombuffer(data, dtype=np.uint8)]

    def encode(self, samples: np.ndarray) -> bytes:
        """Float samples in [-1, 1] to wire bytes."""
        clipped = np.clip(samples, -1.0, 32767 / 32768)
        if self.type == "audio/pcm":
            return np.round(clipped * 32768.0).astype("<i2").tobytes()
        values, codes = _SORTED[self.type]
        idx = np.clip(np.searchsorted(values, clipped), 1, len(values) - 1)
        nearer_left = (clipped - values[idx - 1]) <= (values[idx] - clipped)
        return codes[np.where(nearer_left, idx - 1, idx)].tobytes()


PCM_24K = AudioFormat("audio/pcm")


@attrs.define
class Tone:
    """A sine tone with continuous phase across chunks: the model's "voice"."""

    frequency: float = 440.0
    amplitude: float = 0.25
    _position: int = 0

    def samples(self, rate: int, count: int) -> np.ndarray:
        n = np.arange(self._position, self._position + count, dtype=np.float64)
        self._position += count
        return (self.amplitude * np.sin(2.0 * math.pi * self.frequency * n / rate)).astype(
            np.float32
        )

    def chunk(self, fmt: AudioFormat, duration_ms: int) -> bytes:
        """The next ``duration_ms`` in ``fmt``. Every session's tone starts at sample 0 and a
        fleet's answers are alike, so the same chunks recur across sessions: they are made
        once (:func:`_tone_chunk`, keyed by everything they depend on)."""
        count = fmt.rate * duration_ms // 1000
        data = _tone_chunk(fmt, self.frequency, self.amplitude, self._position, count)
        self._position += count
        return data


@functools.lru_cache(maxsize=512)
def _tone_chunk(fmt: AudioFormat, frequency: float, amplitude: float, position: int, count: int) -> bytes:
    return fmt.encode(Tone(frequency, amplitude, position).samples(fmt.rate, count))
