"""Audio tracks: :class:`PcmTrack` plays 24 kHz PCM16 fed from trio as 20 ms frames (Opus is
aiortc's), and ``_Downmixer`` turns decoded 48 kHz stereo into the protocol's 24 kHz mono."""

from __future__ import annotations

import asyncio
import fractions
import math
from typing import Callable

import av
import numpy as np
import trio
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from actors.proto.audio import AudioConverter
from actors.rtc.loop import RtcLoop
from actors.rtc.media import FRAME_BYTES, FRAME_SAMPLES, PCM_RATE

__all__ = ["PcmTrack"]


# -- audio ------------------------------------------------------------------------------------


class PcmTrack(MediaStreamTrack):
    """An outgoing audio track fed from trio with 24 kHz PCM16 mono bytes.

    ``feed(pcm)`` appends to a buffer (a plain method: trio and the loop share one thread);
    aiortc pulls 20 ms frames through ``recv()``, paced on the loop clock, silence when the
    buffer is empty.  ``max_buffered_ms`` caps the buffer: the oldest audio is dropped and
    counted in ``dropped_bytes``.  ``clear()`` empties it (barge-in); ``drained`` is a trio
    Event set whenever the buffer has been emptied.

    ``dtx=True`` (discontinuous transmission): when the buffer is empty nothing is sent at
    all instead of silence; ``recv()`` waits for the next ``feed`` and the frame timestamps
    jump by the pause (RTP timestamps keep following the wall clock, as with Opus DTX).
    Nothing is encoded, encrypted or decoded while a side is silent, which is most of a
    conversation; a receiver simply gets no audio during the pause.  ``silent_frames`` counts
    the silence frames sent (always 0 with DTX).
    """

    kind = "audio"

    def __init__(self, loop: RtcLoop, *, max_buffered_ms: int = 120_000, dtx: bool = False) -> None:
        super().__init__()
        self._rtc = loop
        self.dtx = dtx
        self._fed: asyncio.Event | None = None
        self._paused = False
        self.silent_frames = 0
        self._buffer = bytearray()
        self._max_bytes = max_buffered_ms * PCM_RATE // 1000 * 2
        self._start: float | None = None
        self._pts = 0
        self._silence = np.zeros((1, FRAME_SAMPLES), dtype=np.int16)
        self._time_base = fractions.Fraction(1, PCM_RATE)
        self._drained = trio.Event()
        self._drained.set()
        self.dropped_bytes = 0
        self.sent_bytes = 0

    @property
    def drained(self) -> trio.Event:
        """Set while nothing is queued (renewed by ``feed``)."""
        return self._drained

    def feed(self, pcm: bytes) -> None:
        if len(pcm) % 2:
            pcm = pcm[:-1]
        if not pcm:
            return
        if self._drained.is_set():
            self._drained = trio.Event()
        self._buffer += pcm
        if self._fed is not None:
            self._fed.set()
        excess = len(self._buffer) - self._max_bytes
        if excess > 0:
            excess += excess % 2
            del self._buffer[:excess]
            self.dropped_bytes += excess

    def clear(self) -> int:
        """Drop the queued audio; returns how many bytes were dropped."""
        n = len(self._buffer)
        self._buffer.clear()
        self._drained.set()
        return n

    def stop(self) -> None:
        super().stop()
        self._drained.set()
        if self._fed is not None:
            self._fed.set()

    @property
    def buffered_ms(self) -> float:
        return len(self._buffer) / 2 / PCM_RATE * 1000

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.dtx and not self._buffer:
            if self._fed is None:
                self._fed = asyncio.Event()
            self._fed.clear()
            self._paused = True
            await self._fed.wait()
            if self.readyState != "live":
                raise MediaStreamError
        now = self._rtc.time()
        if self._start is None:
            self._start = now
            self._paused = False
        elif self._paused:  # resume after a pause: the timestamp jumps to the wall clock
            self._paused = False
            elapsed = math.ceil((now - self._start) * PCM_RATE / FRAME_SAMPLES) * FRAME_SAMPLES
            self._pts = max(self._pts + FRAME_SAMPLES, elapsed)
        else:
            self._pts += FRAME_SAMPLES
            due = self._start + self._pts / PCM_RATE
            if due - now > 0:
                await asyncio.sleep(due - now)
            elif now - due > 0.2:  # fell behind (a stalled loop): do not burst to catch up
                self._start = now - self._pts / PCM_RATE
        if self.readyState != "live":
            raise MediaStreamError
        buf = self._buffer
        if buf:
            chunk = bytes(buf[:FRAME_BYTES])
            del buf[:FRAME_BYTES]
            self.sent_bytes += len(chunk)
            samples = np.frombuffer(chunk, dtype="<i2")
            if len(samples) < FRAME_SAMPLES:
                samples = np.concatenate([samples, np.zeros(FRAME_SAMPLES - len(samples), "<i2")])
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            if not buf:
                self._drained.set()
        else:
            self.silent_frames += 1
            frame = av.AudioFrame.from_ndarray(self._silence, format="s16", layout="mono")
        frame.sample_rate = PCM_RATE
        frame.pts = self._pts
        frame.time_base = self._time_base
        return frame


class _Downmixer:
    """Decoded frames -> 24 kHz mono PCM16 bytes, in chunks of ``chunk_ms``.

    aiortc decodes Opus to 48 kHz stereo s16 (G.711 to 8 kHz mono): integer ratios go
    through the project's sans-I/O :class:`~actors.proto.audio.AudioConverter` (about 3x
    cheaper than libswresample per 20 ms frame); anything else through ``av.AudioResampler``.
    """

    def __init__(self, chunk_ms: int) -> None:
        self._chunk = max(1, chunk_ms * PCM_RATE // 1000) * 2
        self._pending = bytearray()
        self._shape: tuple[str, int, int] | None = None
        self._convert: Callable[[av.AudioFrame], bytes] | None = None

    def _converter_for(self, frame: av.AudioFrame) -> Callable[[av.AudioFrame], bytes]:
        channels = len(frame.layout.channels)
        rate = frame.sample_rate
        if frame.format.name == "s16" and channels in (1, 2) and (
                rate % PCM_RATE == 0 or PCM_RATE % rate == 0):
            converter = AudioConverter(rate, PCM_RATE, src_channels=channels)
            return lambda f: converter.process(f.to_ndarray().reshape(-1))
        resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM_RATE)
        return lambda f: b"".join(o.to_ndarray().tobytes() for o in resampler.resample(f))

    def add(self, frame: av.AudioFrame) -> list[bytes]:
        shape = (frame.format.name, len(frame.layout.channels), frame.sample_rate)
        if shape != self._shape or self._convert is None:
            self._shape, self._convert = shape, self._converter_for(frame)
        self._pending += self._convert(frame)
        chunks: list[bytes] = []
        while len(self._pending) >= self._chunk:
            chunks.append(bytes(self._pending[: self._chunk]))
            del self._pending[: self._chunk]
        return chunks
