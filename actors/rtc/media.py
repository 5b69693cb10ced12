"""What every WebRTC piece shares: the protocol's audio framing, the data channel's label,
:class:`RtcError`, and :func:`tone` (test and load-run audio)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["DATA_CHANNEL_LABEL", "FRAME_BYTES", "FRAME_MS", "FRAME_SAMPLES", "PCM_RATE",
           "RtcError", "tone"]

#: the realtime protocol's audio: PCM16 little-endian mono at 24 kHz
PCM_RATE = 24_000
#: one outgoing audio frame (aiortc's Opus encoder takes any rate; 20 ms is the Opus ptime)
FRAME_MS = 20
FRAME_SAMPLES = PCM_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
DATA_CHANNEL_LABEL = "oai-events"


class RtcError(Exception):
    """A WebRTC step failed (bad SDP, negotiation, a closed peer); the message says which."""


def tone(freq: float, ms: int, *, rate: int = PCM_RATE, amplitude: float = 0.3) -> bytes:
    """A sine tone as PCM16 mono bytes (handy for tests and load runs)."""
    n = rate * ms // 1000
    t = np.arange(n) / rate
    return (np.sin(2 * math.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()
