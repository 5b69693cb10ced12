"""A small fixed-delay jitter buffer for 20 ms telephony frames.

The network delivers packets late, out of order, twice, or not at all; the player wants
one frame every 20 ms.  :class:`JitterBuffer` sits between them:

* ``push(packet)`` stores a packet under its sequence number.  Order is computed on the
  16-bit sequence space with wrap-around (65535 is followed by 0).
* ``pop()`` is called once per frame period and returns the next frame in sequence.
  Playback starts once ``depth`` frames are buffered or ``depth`` periods have passed
  since the first packet (the fixed delay, 60 ms by default, and a stream shorter than
  that still plays); until then it returns ``None``.  A frame that never came is concealed by a silence
  frame when later packets prove it lost; an empty buffer (underrun) also yields
  silence but does not advance, so a late packet can still play.

Bounded memory and latency: at most ``capacity`` frames are held; beyond that the oldest
are dropped (``overflow``).  Packets older than the play position are ``late`` and
dropped, repeats are ``duplicates``.  A jump of more than ``resync_gap`` sequence numbers
(a restarted sender) restarts the buffer.  Every decision is counted in :class:`JitterStats`.
"""

from __future__ import annotations

import attrs

from .packet import RtpPacket

__all__ = ["JitterBuffer", "JitterStats", "seq_delta", "PCMU_SILENCE", "PCMA_SILENCE"]

#: 20 ms of silence in each G.711 law (the encodings of sample value 0).
PCMU_SILENCE = b"\xff" * 160
PCMA_SILENCE = b"\xd5" * 160


def seq_delta(a: int, b: int) -> int:
    """``a - b`` in the 16-bit sequence space, in -32768..32767."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


@attrs.define
class JitterStats:
    pushed: int = 0
    played: int = 0
    lost: int = 0
    underruns: int = 0
    late: int = 0
    duplicates: int = 0
    overflow: int = 0
    resyncs: int = 0


@attrs.define
class JitterBuffer:
    """Reorders one stream's frames and paces them out at a fixed delay."""

    depth: int = 3
    capacity: int = 50
    silence: bytes = PCMU_SILENCE
    resync_gap: int = 1000
    stats: JitterStats = attrs.field(factory=JitterStats)
    _frames: dict[int, bytes] = attrs.field(factory=dict)
    _next: int | None = None
    _playing: bool = False
    _waited: int = 0
    _ssrc: int | None = None

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.depth <= self.capacity:
            raise ValueError("need 1 <= depth <= capacity")

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, packet: RtpPacket) -> None:
        """Store an incoming packet's payload."""
        self.stats.pushed += 1
        seq = packet.sequence
        if self._ssrc is not None and packet.ssrc != self._ssrc:
            self._reset()
        self._ssrc = packet.ssrc
        if self._next is None:
            self._next = seq
        delta = seq_delta(seq, self._next)
        if abs(delta) > self.resync_gap:
            self._reset()
            self._ssrc, self._next, delta = packet.ssrc, seq, 0
        if delta < 0:
            if self._playing:
                self.stats.late += 1
                return
            self._next = seq  # before playback: start at the earliest packet seen
        if seq in self._frames:
            self.stats.duplicates += 1
            return
        self._frames[seq] = packet.payload
        while len(self._frames) > self.capacity:
            self._drop_oldest()

    def pop(self) -> bytes | None:
        """The frame for this period: payload, concealment silence, or ``None`` (buffering)."""
        if self._next is None:
            return None
        if not self._playing:
            self._waited += 1
            if len(self._frames) < self.depth and self._waited <= self.depth:
                return None
            self._playing = True
        payload = self._frames.pop(self._next, None)
        if payload is not None:
            self.stats.played += 1
        elif self._frames:
            self.stats.lost += 1
            payload = self.silence
        else:
            self.stats.underruns += 1
            return self.silence
        self._next = (self._next + 1) & 0xFFFF
        return payload

    def _drop_oldest(self) -> None:
        assert self._next is not None
        oldest = min(self._frames, key=lambda s: seq_delta(s, self._next))  # type: ignore[arg-type]
        del self._frames[oldest]
        self.stats.overflow += 1
        self._next = (oldest + 1) & 0xFFFF

    def _reset(self) -> None:
        self.stats.resyncs += 1
        self._frames.clear()
        self._next = None
        self._playing = False
        self._waited = 0
