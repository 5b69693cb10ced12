"""Sending and receiving an RTP stream: packetizer, depacketizer and 20 ms pacing math.

:class:`RtpPacketizer` turns audio frames into packets.  Sequence numbers go up by one
per packet and timestamps by the samples in each frame (160 for 20 ms of G.711), both
wrapping modulo 2**16 and 2**32.  Initial SSRC, sequence and timestamp are random (RFC
3550 5.1) from an injectable ``random.Random``, so tests are reproducible.  The marker
bit is set on the first packet of each talkspurt: the first packet of the stream and
the first one after :meth:`RtpPacketizer.skip` (silence that was not sent).

:class:`RtpDepacketizer` decodes datagrams, keeps only the payload types it was told
about, locks onto one SSRC (following a change of source, as when the peer restarts its
stream) and counts what it threw away.

Pacing is pure arithmetic on times the caller supplies: frame *n* of a stream started
at *t0* is due at ``t0 + n * ptime``.  Scheduling from the start time, not from the last
send, keeps the long-run rate exact however late each wake-up is.
"""

from __future__ import annotations

import math
import random

import attrs

from .packet import _HEADER, RtpDecodeError, RtpError, RtpPacket, is_rtcp

__all__ = ["RtpPacketizer", "RtpDepacketizer", "DepacketizerStats", "send_time", "frames_due",
           "Pacer"]


@attrs.define
class RtpPacketizer:
    """Builds the packets of one outgoing stream (one SSRC)."""

    payload_type: int
    ssrc: int
    sequence: int
    timestamp: int
    samples_per_frame: int = 160
    _talkspurt: bool = True

    @classmethod
    def create(cls, payload_type: int, *, rng: random.Random | None = None,
               ssrc: int | None = None, sequence: int | None = None,
               timestamp: int | None = None, samples_per_frame: int = 160) -> "RtpPacketizer":
        """A packetizer with random initial values unless given."""
        rng = rng or random.SystemRandom()
        return cls(
            payload_type=payload_type,
            ssrc=rng.getrandbits(32) if ssrc is None else ssrc,
            sequence=rng.getrandbits(16) if sequence is None else sequence,
            timestamp=rng.getrandbits(32) if timestamp is None else timestamp,
            samples_per_frame=samples_per_frame,
        )

    def packetize(self, payload: bytes, *, samples: int | None = None,
                  payload_type: int | None = None) -> bytes:
        """The next packet carrying ``payload`` (``samples`` defaults to one frame).

        The header is packed here, not through :class:`RtpPacket` (what ``RtpPacket(...).encode()``
        gives for a packet without CSRCs, extension or padding): every SIP call sends one
        packet per 20 ms from the audio clock's task, and the object and its range checks
        were half of a frame's cost. Sequence and timestamp stay in range by construction."""
        pt = self.payload_type if payload_type is None else payload_type
        if not 0 <= pt < 128 or not 0 <= self.ssrc < 1 << 32:
            raise RtpError(f"payload type {pt} / SSRC {self.ssrc} out of range")
        packet = _HEADER.pack(0x80, pt | 0x80 if self._talkspurt else pt, self.sequence,
                              self.timestamp, self.ssrc) + payload
        self._talkspurt = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        step = self.samples_per_frame if samples is None else samples
        self.timestamp = (self.timestamp + step) & 0xFFFFFFFF
        return packet

    def packetize_event(self, payload: bytes, *, payload_type: int, timestamp: int,
                        marker: bool = False) -> bytes:
        """A packet that shares the media clock but not its progression (RFC 4733 events:
        every packet of one event carries the event's start ``timestamp``)."""
        packet = RtpPacket(payload_type, self.sequence, timestamp & 0xFFFFFFFF, self.ssrc,
                           payload, marker).encode()
        self.sequence = (self.sequence + 1) & 0xFFFF
        return packet

    def skip(self, samples: int) -> None:
        """Advance the clock over audio that is not sent; the next packet starts a talkspurt."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self._talkspurt = True

    def start_talkspurt(self) -> None:
        """Mark the next packet as the start of a talkspurt."""
        self._talkspurt = True


@attrs.define
class DepacketizerStats:
    received: int = 0
    malformed: int = 0
    rtcp: int = 0
    unexpected_payload_type: int = 0
    foreign_ssrc: int = 0
    ssrc_changes: int = 0


@attrs.define
class RtpDepacketizer:
    """Decodes one incoming stream.

    Packets from a second SSRC are dropped until ``switch_after`` of them arrive in a row
    with none from the current source: then the new source is adopted (a restarted peer).
    """

    payload_types: frozenset[int] = frozenset({0, 8, 101})
    switch_after: int = 5
    ssrc: int | None = None
    stats: DepacketizerStats = attrs.field(factory=DepacketizerStats)
    _candidate: int | None = None
    _candidate_count: int = 0

    def receive(self, datagram: bytes) -> RtpPacket | None:
        """The packet in ``datagram``, or ``None`` if it was dropped (and counted)."""
        if is_rtcp(datagram):
            self.stats.rtcp += 1
            return None
        try:
            packet = RtpPacket.decode(datagram)
        except RtpDecodeError:
            self.stats.malformed += 1
            return None
        if packet.payload_type not in self.payload_types:
            self.stats.unexpected_payload_type += 1
            return None
        if self.ssrc is None:
            self.ssrc = packet.ssrc
        elif packet.ssrc != self.ssrc:
            if packet.ssrc != self._candidate:
                self._candidate, self._candidate_count = packet.ssrc, 0
            self._candidate_count += 1
            if self._candidate_count < self.switch_after:
                self.stats.foreign_ssrc += 1
                return None
            self.ssrc = packet.ssrc
            self.stats.ssrc_changes += 1
        self._candidate, self._candidate_count = None, 0
        self.stats.received += 1
        return packet


def send_time(start: float, index: int, ptime: float = 0.020) -> float:
    """When frame ``index`` (0-based) of a stream started at ``start`` is due."""
    return start + index * ptime


def frames_due(start: float, now: float, sent: int, ptime: float = 0.020) -> int:
    """How many frames should be sent at ``now`` to catch up, ``sent`` having been sent."""
    if now < start:
        return 0
    # A tiny epsilon keeps exact multiples (0.06 / 0.02 = 2.9999...) on the right side.
    return max(0, math.floor((now - start) / ptime + 1e-9) + 1 - sent)


@attrs.define
class Pacer:
    """The 20 ms send schedule of one stream, as numbers.

    ``due(now)`` says how many frames to send; ``next_deadline()`` when to wake up next.
    If the sender fell more than ``max_burst`` frames behind (a stalled process), the
    schedule is moved forward instead of sending a burst, and ``skipped`` counts the
    frames given up.
    """

    start: float
    ptime: float = 0.020
    max_burst: int = 5
    sent: int = 0
    skipped: int = 0

    def due(self, now: float) -> int:
        count = frames_due(self.start, now, self.sent, self.ptime)
        if count > self.max_burst:
            self.skipped += count - 1
            self.sent += count - 1
            count = 1
        return count

    def mark_sent(self, count: int = 1) -> None:
        self.sent += count

    def next_deadline(self) -> float:
        return send_time(self.start, self.sent, self.ptime)
