"""Energy voice-activity detection for the embedded server's ``server_vad`` (sans-I/O).

Audio is cut into 10 ms frames. A frame's *level* is its RMS in dBFS mapped linearly onto
``[0, 1]`` (-60 dBFS or quieter is 0, full scale is 1), so the protocol's ``threshold`` (0.5 by
default) means -30 dBFS. A frame is speech when its level is above the threshold.

* idle -> speaking on the first speech frame: :class:`SpeechStarted` with the frame's start.
* speaking -> idle once ``silence_duration_ms`` of consecutive non-speech frames have passed:
  :class:`SpeechStopped` with the end of the last of those frames (so the silence is included,
  as the protocol's ``audio_end_ms`` is documented).

Positions are milliseconds on the caller's audio clock: the detector starts at ``start_ms`` and
advances 10 ms a frame. ``prefix_padding_ms`` is applied by the caller (it concerns what goes into
the committed item, not detection).

:meth:`EnergyVad.feed_pcm16` takes PCM16 bytes as they arrive in an append (no float samples
made): a frame's energy is the sum of its integer samples' squares, exact in float64 (at most
2**38), so it decides every frame exactly as :meth:`~EnergyVad.feed` does on the same audio
decoded to floats (``x / 32768``, whose squares sum exactly too); the two may be mixed.
"""

from __future__ import annotations

import functools

import attrs
import numpy as np

from standin.model.memo import Memo

__all__ = ["EnergyVad", "SpeechStarted", "SpeechStopped", "VadParams", "frame_levels", "speech_energy"]

FRAME_MS = 10
_vecdot = getattr(np, "vecdot", None)
_I16 = np.dtype("<i2")
_F8 = np.dtype(np.float64)
_NO_SAMPLES = np.zeros(0, dtype=np.float32)
#: (frame length, PCM16 chunk of whole frames) -> each frame's energy, the least and the
#: greatest of them, for chunks of up to ``_ENERGIES_BYTES`` seen lately (a load test's
#: sessions send the same audio; ``standin.model.append`` hands out the same bytes for the
#: same text, so the keys are mostly its values): emptied when full, at 4,096 chunks or 4 MiB
#: of them (the keys keep their bytes alive: by count alone, 4,096 chunks of 16 KiB would hold
#: 64 MiB)
_ENERGIES: Memo[tuple[int, bytes], tuple[list[float], float, float]] = Memo(4 << 20, 4096)
_ENERGIES_BYTES = 1 << 14


@functools.cache
def _ones(n: int) -> np.ndarray:
    return np.ones(n)
_FLOOR_DB = -60.0


@attrs.frozen
class VadParams:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@attrs.frozen
class SpeechStarted:
    at_ms: float


@attrs.frozen
class SpeechStopped:
    at_ms: float


def speech_energy(threshold: float) -> float:
    """The mean square a frame must exceed for its level to exceed ``threshold``.

    level > t  <=>  1 - dB/-60 > t  <=>  dB > 60 (t - 1)  <=>  mean square > 10^(6 (t - 1)),
    for t in [0, 1] (the clip to [0, 1] changes no comparison there), so the hot path compares
    energies and never takes a logarithm."""
    return 10.0 ** (-_FLOOR_DB / 10.0 * (threshold - 1.0))


def frame_levels(frames: np.ndarray) -> np.ndarray:
    """Levels in [0, 1] of a 2-D array of frames (one frame a row) of float samples."""
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    db = 20.0 * np.log10(np.maximum(rms, 1e-12))
    return np.clip(1.0 - db / _FLOOR_DB, 0.0, 1.0)


@attrs.define
class EnergyVad:
    """Feeds float samples (or PCM16 bytes) at one rate; yields speech start/stop transitions."""

    params: VadParams
    rate: int
    start_ms: float = 0.0
    speaking: bool = False
    _frames_done: int = 0
    _silence_ms: int = 0
    _pending: np.ndarray = attrs.field(factory=lambda: np.zeros(0, dtype=np.float32))
    _energy_floor: float = attrs.field(init=False)
    #: the energy a frame of PCM16 integers must exceed (the float bound scaled by 2**30, exactly)
    _pcm_floor: float = attrs.field(init=False)
    _frame_len: int = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._energy_floor = speech_energy(self.params.threshold)
        self._frame_len = frame_len = self.rate * FRAME_MS // 1000
        self._pcm_floor = self._energy_floor * frame_len * 2.0**30

    @property
    def position_ms(self) -> float:
        return self.start_ms + self._frames_done * FRAME_MS

    def feed(self, samples: np.ndarray) -> list[SpeechStarted | SpeechStopped]:
        frame_len = self._frame_len
        if self._pending.dtype == np.int16 and self._pending.size:  # after feed_pcm16: exact
            self._pending = self._pending.astype(np.float32) / 32768.0
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = len(data) // frame_len
        self._pending = data[whole * frame_len :].copy()
        if whole == 0:
            return []
        rows = data[: whole * frame_len].reshape(whole, frame_len)
        energy = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
        return self._step((energy > self._energy_floor * frame_len).tolist())

    def feed_pcm16(self, data: bytes) -> list[SpeechStarted | SpeechStopped]:
        """:meth:`feed` for PCM16 little-endian bytes (a trailing odd byte is ignored).

        Digital silence (all zero bytes) has no energy at all: no level is computed. A chunk of
        whole frames has its frames' energies looked up (:data:`_ENERGIES`: a fleet's sessions
        send the same audio), with their least and greatest, which decide a chunk all quiet or
        all speech at once. Otherwise, while nobody speaks, a chunk whose whole energy is not
        above one frame's bound is quiet without a level per frame (every frame's energy is part
        of the sum); else its frames' energies are computed (and kept, for whole frames)."""
        count = len(data) // 2
        if self._pending.size:  # a partial frame from before: join it (floats: the float path)
            samples = np.frombuffer(data, dtype=_I16, count=count)
            if self._pending.dtype != np.int16:
                return self.feed(samples.astype(np.float32) / 32768.0)
            samples = np.concatenate([self._pending, samples])
            data, count = samples.tobytes(), len(samples)
            self._pending = _NO_SAMPLES
        frame_len = self._frame_len
        whole = count // frame_len
        if whole * frame_len != count:
            self._pending = np.frombuffer(data, dtype=_I16, count=count - whole * frame_len,
                                          offset=2 * whole * frame_len).copy()
        if whole == 0:
            return []
        if not data[0] and not data[-1] and data == bytes(len(data)):  # digital silence: no speech
            if self.speaking:
                return self._step([False] * whole)
            self._frames_done += whole
            return []
        floor = self._pcm_floor
        key = None
        if whole * frame_len == count and count <= _ENERGIES_BYTES // 2 and type(data) is bytes:
            key = (frame_len, data)
        if key is not None:  # whole frames: their energies may be known
            known = _ENERGIES.get(key)
            if known is not None:
                energy, least, most = known
                return self._decide(energy, least, most, floor)
        samples = np.frombuffer(data, dtype=_I16, count=whole * frame_len).astype(_F8)
        if not self.speaking and samples.dot(samples) <= floor:  # exact: integer squares
            self._frames_done += whole
            return []
        rows = samples.reshape(whole, frame_len)
        # sums of integer squares: exact in any order (numpy >= 2 has the row-wise dot in one call)
        energy = (_vecdot(rows, rows) if _vecdot is not None else np.square(rows) @ _ones(frame_len)).tolist()
        least, most = min(energy), max(energy)
        if key is not None:
            _ENERGIES.put(key, (energy, least, most), len(data))
        return self._decide(energy, least, most, floor)

    def _decide(self, energy: list[float], least: float, most: float,
                floor: float) -> list[SpeechStarted | SpeechStopped]:
        """:meth:`_step` of frames of these energies (``least`` and ``most`` of them): a chunk
        that is quiet throughout while nobody speaks, or speech throughout while someone does,
        changes nothing but the position and the silence count, decided without a flag a frame."""
        if self.speaking:
            if least > floor:
                self._silence_ms = 0
                self._frames_done += len(energy)
                return []
        elif most <= floor:
            self._frames_done += len(energy)
            return []
        return self._step([e > floor for e in energy])

    def _step(self, speech: list[bool]) -> list[SpeechStarted | SpeechStopped]:
        out: list[SpeechStarted | SpeechStopped] = []
        if self.speaking:
            if speech and False not in speech:  # speaking on: each frame restarts the silence count
                self._silence_ms = 0
                self._frames_done += len(speech)
                return out
        elif True not in speech:  # idle and quiet: nothing to decide
            self._frames_done += len(speech)
            return out
        for is_speech in speech:
            frame_start = self.position_ms
            self._frames_done += 1
            if is_speech:
                self._silence_ms = 0
                if not self.speaking:
                    self.speaking = True
                    out.append(SpeechStarted(frame_start))
            elif self.speaking:
                self._silence_ms += FRAME_MS
                if self._silence_ms >= self.params.silence_duration_ms:
                    self.speaking = False
                    self._silence_ms = 0
                    out.append(SpeechStopped(self.position_ms))
        return out
