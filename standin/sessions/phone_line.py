"""What the stand-in's ears get from a phone call: the caller's words through a G.711 line.

A SIP call's audio is 8 kHz G.711, upsampled to 24 kHz for the model (``sip_call.py``), so it
has nothing above 4 kHz; and espeak-ng's pauses and padding, through G.711, decode to exact
digital silence (µ-law 0, A-law ±8). The recognizer (`standin.hearing`, pocketsphinx's 16 kHz
en-US model) was trained on recordings that are never digitally silent, and it misses many
band-limited utterances padded with such silence: the round trip's "What's the weather in
Paris" (en-us, 160 words a minute) is not heard at all on a µ-law or A-law call, though it is
over WebSocket and WebRTC.

A real line is never silent either (G.712 allows idle channel noise up to -65 dBm0p). So a
call's session hears through :class:`PhoneLineHearing`, which adds a line noise floor
(``noise_dbfs``, white, -80 dBFS RMS by default, about 3 LSB; seeded: the same utterance is
heard the same way every time) to the committed audio at the recognizer's rate (16 kHz, so the
floor also covers the empty 4-8 kHz band) before the recognizer gets it. Only the recognizer
hears the noise: the VAD, the input buffer and everything the model reports keep the call's
audio as it came.

Measured with ``bench/voice_telephone.py`` (its docstring has the table): on the 20-rule bench
the floor takes µ-law calls from 54 to 62 of 96 utterances heard as the right rule (wideband:
66), false matches from 4 to 5 of 50; "What's the weather in Paris" is heard from -90 dBFS on,
hence -80 with a 10 dB margin. Louder floors hear more and mistake more (-60 dBFS: 90/96 right,
16/50 false): rejecting poor alignments is the recognizer's job, not the line's.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from standin.hearing import RATE as RECOGNIZER_RATE  # pocketsphinx's en-US model: 16 kHz
from standin.hearing import pcm16_at_recognizer_rate

__all__ = ["PhoneLineHearing", "phone_line_config", "RECOGNIZER_RATE"]


@attrs.frozen
class PhoneLineHearing:
    """A hearing model (``hear(samples, rate) -> str | None``) for audio that came by phone."""

    inner: Any  # standin.hearing.Hearing, or anything with its hear()
    #: the line's noise floor, dB below full scale (RMS)
    noise_dbfs: float = -80.0
    seed: int = 18

    @property
    def phrases(self) -> list[str]:
        return self.inner.phrases

    def hear(self, samples: np.ndarray, rate: int) -> str | None:
        """What the inner recognizer hears in ``samples`` (float, [-1, 1], at ``rate`` Hz)
        with the line's noise floor added at the recognizer's rate."""
        samples = np.asarray(samples, dtype=np.float64)
        if rate != RECOGNIZER_RATE and len(samples):
            samples = np.frombuffer(pcm16_at_recognizer_rate(samples, rate), "<i2") / 32768
        floor = 10 ** (self.noise_dbfs / 20)
        noisy = samples + np.random.default_rng(self.seed).standard_normal(len(samples)) * floor
        return self.inner.hear(noisy, RECOGNIZER_RATE)


def phone_line_config(config: Any) -> Any:
    """``config`` (a ``standin.model.realtime.ModelConfig``) for a phone call's session: its
    hearing model, if any, hears through :class:`PhoneLineHearing`."""
    hearing = getattr(config, "hearing", None)
    if hearing is None or isinstance(hearing, PhoneLineHearing):
        return config
    return attrs.evolve(config, hearing=PhoneLineHearing(hearing))
