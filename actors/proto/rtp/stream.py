"""One call's RTP media as numbers: the part the SIP actor and the embedded server share.

An :class:`RtpStream` is sans-I/O (times are parameters, datagrams are bytes): the I/O shell
(``actors.rtp_shell.run_rtp``) only moves datagrams and calls :meth:`tick` when the process's
audio clock reaches :meth:`next_deadline`.

Out: :meth:`play` queues 20 ms G.711 frames (the negotiated law); every period :meth:`tick`
gives the datagrams due now (queued audio, else silence, so the peer hears a continuous
stream on its own 20 ms schedule, :class:`~.packetizer.Pacer`) and records how late the tick
was (``lateness``). With ``track_echo`` the send time of each sequence number is kept, so
that a peer echoing our own packets (``sipp -rtp_echo``) gives a round trip (``echo_rtt``).

In: :meth:`receive` decodes a datagram (:class:`~.packetizer.RtpDepacketizer`; an echo of our
own SSRC is accepted too): RFC 4733 telephone events become digits (:class:`~.dtmf.DtmfDetector`);
audio either goes through a :class:`~.jitter.JitterBuffer` (``jitter=True``: one frame comes out
per frame sent, see :meth:`take_audio`) or is handed out at once (a loopback peer that does
not reorder).
"""

from __future__ import annotations

import random
from collections import deque

import attrs

from .dtmf import DtmfDetector
from .jitter import PCMA_SILENCE, PCMU_SILENCE, JitterBuffer
from .packet import RtpPacket
from .packetizer import Pacer, RtpDepacketizer, RtpPacketizer
from .samples import SampleLog

__all__ = ["FRAME", "PTIME", "Received", "RtpStream"]

FRAME = 160  # 20 ms of 8 kHz G.711
PTIME = 0.020
_ECHO_WINDOW = 1000  # send times kept for echo matching (20 s of frames)


@attrs.frozen
class Received:
    """What one incoming datagram meant (see :meth:`RtpStream.receive`)."""

    #: the audio payload, when no jitter buffer holds it back
    audio: bytes | None = None
    digits: tuple[str, ...] = ()
    #: it was our own packet coming back; ``rtt`` its round trip (None: send time forgotten)
    echo: bool = False
    rtt: float | None = None


@attrs.define(eq=False)
class RtpStream:
    codec: int
    dtmf_type: int | None
    packetizer: RtpPacketizer
    depacketizer: RtpDepacketizer
    detector: DtmfDetector
    jitter: JitterBuffer | None
    track_echo: bool = False
    rtp_sent: int = 0
    rtp_received: int = 0
    audio_frames_sent: int = 0  # frames of queued audio (not silence) sent
    frames_played_ms: float = 0.0
    lateness: SampleLog = attrs.field(factory=SampleLog)
    echo_rtt: SampleLog = attrs.field(factory=SampleLog)
    pacer: Pacer | None = None
    _playout: deque[bytes] = attrs.field(factory=deque)
    _heard: list[bytes] = attrs.field(factory=list)
    _sent_at: dict[int, float] = attrs.field(factory=dict)
    _sent_order: deque[int] = attrs.field(factory=deque)

    @classmethod
    def create(cls, codec: int, dtmf_type: int | None = None, *, jitter: bool = False,
               track_echo: bool = False, lateness_limit: int = 20_000,
               rng: random.Random | None = None) -> RtpStream:
        types = frozenset({codec} | ({dtmf_type} if dtmf_type is not None else set()))
        return cls(codec, dtmf_type, RtpPacketizer.create(codec, rng=rng), RtpDepacketizer(types),
                   DtmfDetector(dtmf_type if dtmf_type is not None else -1),
                   JitterBuffer(silence=silence_for(codec)) if jitter else None,
                   track_echo=track_echo, lateness=SampleLog(lateness_limit))

    @property
    def silence(self) -> bytes:
        return silence_for(self.codec)

    @property
    def ssrc(self) -> int:
        return self.packetizer.ssrc

    # -- out --------------------------------------------------------------------------------

    def play(self, frames: list[bytes]) -> None:
        """Queue 20 ms frames (the negotiated law) for the next ticks."""
        self._playout.extend(frames)

    def clear(self) -> int:
        """Drop the queued audio; returns how many frames were dropped."""
        dropped = len(self._playout)
        self._playout.clear()
        return dropped

    @property
    def queued_frames(self) -> int:
        return len(self._playout)

    def start(self, now: float) -> None:
        self.pacer = Pacer(now, PTIME)

    def next_deadline(self) -> float:
        assert self.pacer is not None, "start(now) first"
        return self.pacer.next_deadline()

    def tick(self, now: float) -> list[bytes]:
        """The datagrams due at ``now`` (usually one; more after a stall, see ``Pacer``)."""
        assert self.pacer is not None, "start(now) first"
        self.lateness.add(now - self.pacer.next_deadline())
        count = self.pacer.due(now)
        out = []
        for _ in range(count):
            if self._playout:
                payload = self._playout.popleft()
                self.audio_frames_sent += 1
                self.frames_played_ms += PTIME * 1000
            else:
                payload = self.silence
            if self.track_echo:
                seq = self.packetizer.sequence
                self._sent_at[seq] = now
                self._sent_order.append(seq)
                if len(self._sent_order) > _ECHO_WINDOW:
                    self._sent_at.pop(self._sent_order.popleft(), None)
            out.append(self.packetizer.packetize(payload))
            if self.jitter is not None:  # the far end's audio plays out on our clock
                frame = self.jitter.pop()
                if frame is not None:
                    self._heard.append(frame)
        self.pacer.mark_sent(count)
        return out

    def sent(self) -> None:
        """One datagram from :meth:`tick` went out (a failed send is a lost datagram)."""
        self.rtp_sent += 1

    def take_audio(self) -> list[bytes]:
        """Frames the jitter buffer played out since the last call (one per frame sent)."""
        heard, self._heard = self._heard, []
        return heard

    # -- in ---------------------------------------------------------------------------------

    def receive(self, datagram: bytes, now: float) -> Received | None:
        """What ``datagram`` means; None if it is not for this stream (counted by the
        depacketizer)."""
        packet = self.depacketizer.receive(datagram)
        if packet is None:
            if not (self.track_echo and _ssrc_of(datagram) == self.ssrc):
                return None
            packet = RtpPacket.decode(datagram)  # our echo (the depacketizer locked on the peer)
        self.rtp_received += 1
        echo, rtt = False, None
        if self.track_echo and packet.ssrc == self.ssrc:
            echo = True
            sent = self._sent_at.get(packet.sequence)
            if sent is not None:
                rtt = now - sent
                self.echo_rtt.add(rtt)
        if packet.payload_type != self.codec:
            digits = tuple(d.digit for d in self.detector.push(packet))
            return Received(digits=digits, echo=echo, rtt=rtt)
        if self.jitter is not None:
            self.jitter.push(packet)
            return Received(echo=echo, rtt=rtt)
        return Received(audio=packet.payload, echo=echo, rtt=rtt)


def silence_for(codec: int) -> bytes:
    """20 ms of silence in the law of payload type ``codec`` (0 PCMU, 8 PCMA)."""
    return PCMU_SILENCE if codec == 0 else PCMA_SILENCE


def _ssrc_of(data: bytes) -> int | None:
    return int.from_bytes(data[8:12], "big") if len(data) >= 12 else None
