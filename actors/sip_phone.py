"""A SIP phone: one UDP SIP endpoint placing and answering calls, each with its RTP stream.

:class:`SipPhone` is an I/O shell around the sans-I/O :class:`~actors.proto.sip.SipUserAgent`
(one socket, one timer, events to calls). It places calls (:meth:`SipPhone.dial`) and hands
incoming ones out (:meth:`SipPhone.next_incoming`); each call is a :class:`PhoneCall` with its
own RTP socket and a sans-I/O :class:`~actors.proto.rtp.stream.RtpStream` (the same one the
embedded server's calls use) run by :func:`actors.rtp_shell.run_rtp`: RTP in through a jitter
buffer, RFC 4733 DTMF, and one G.711 frame every 20 ms on the stream's own schedule (queued
audio, else silence), with its lateness and, per sequence number, when each frame left (so an
echoing peer's round trip can be measured).

The SIP actor (:mod:`actors.sip`) bridges such a call to a realtime session; the phone knows
nothing of realtime.
"""

from __future__ import annotations

import socket as stdlib_socket
from typing import Any, Callable

import attrs
import trio

from actors.proto.audio import AudioConverter, g711_encode
from actors.proto.rtp.samples import SampleLog
from actors.proto.rtp.stream import FRAME, Received, RtpStream
from actors.proto.sip import (PCMA, PCMU, TELEPHONE_EVENT, AudioSession, CallAnswered,
                              CallCancelled, CallConfirmed, CallEnded, CallFailed, CallRinging,
                              IncomingCall, SdpNegotiationError, SipConfig, SipError, SipUserAgent,
                              audio_session, create_answer, create_offer)
from actors.rtp_shell import run_rtp
from actors.sip_shell import SipAgentShell, udp_socket

__all__ = ["PhoneCall", "SipPhone"]


@attrs.define(eq=False)
class PhoneCall:
    """One call of a :class:`SipPhone`: its SIP progress and its RTP stream."""

    phone: SipPhone
    sip_call_id: str
    role: str  # "uac" | "uas"
    incoming: IncomingCall | None = None
    media: AudioSession | None = None
    state: str = "calling"  # calling | ringing | up | ended | failed
    end_reason: str = ""
    failure_status: int | None = None
    up: trio.Event = attrs.field(factory=trio.Event)
    ended: trio.Event = attrs.field(factory=trio.Event)
    #: frames from the jitter buffer (8 kHz G.711, the negotiated law), one per 20 ms
    received: trio.MemorySendChannel[bytes] | None = None
    digits: list[str] = attrs.field(factory=list)
    on_digit: Callable[[str], None] | None = None
    #: the RTP media (sans-I/O; shared with the embedded server), once the call is up
    stream: RtpStream | None = None
    #: set (and replaced) whenever an RTP packet is sent or received: wait on it, never poll
    activity: trio.Event = attrs.field(factory=trio.Event)
    _sock: Any = None  # trio socket
    local_sdp: Any = None  # our offer (UAC) or answer (UAS)
    frames: trio.MemoryReceiveChannel[bytes] | None = None  # the bridge's end of ``received``
    _idle: SampleLog = attrs.field(factory=SampleLog)  # what the logs read before the call is up

    @property
    def codec(self) -> int:
        assert self.media is not None
        return self.media.codec.payload_type

    def play(self, frames: list[bytes]) -> None:
        """Queue 20 ms G.711 frames (the negotiated law) for the pacer."""
        assert self.stream is not None, "the call is not up"
        self.stream.play(frames)

    def clear(self) -> int:
        """Drop the queued audio; returns how many frames were dropped."""
        return self.stream.clear() if self.stream is not None else 0

    def play_pcm(self, pcm24k: bytes) -> int:
        """Queue PCM16 mono 24 kHz audio (resampled to 8 kHz, the negotiated G.711 law, 20 ms
        frames; a last partial frame is padded with silence); returns the frames queued."""
        pcm8 = AudioConverter(24000, 8000).process(pcm24k[: len(pcm24k) - len(pcm24k) % 2])
        return self.play_g711(g711_encode(self.codec, pcm8))

    def play_g711(self, g711: bytes) -> int:
        """Queue 8 kHz G.711 audio in the negotiated law (:attr:`codec`) as 20 ms frames (a
        last partial frame is padded with silence); returns the frames queued."""
        if len(g711) % FRAME:
            g711 += self.stream.silence[: FRAME - len(g711) % FRAME] if self.stream else b""
        frames = [g711[i:i + FRAME] for i in range(0, len(g711) - len(g711) % FRAME, FRAME)]
        self.play(frames)
        return len(frames)

    async def wait_played(self) -> None:
        """Return once every queued frame has been sent (or the call ended)."""
        while self.queued_frames and not self.ended.is_set():
            await self.activity.wait()  # set by each frame sent, and by the call's end

    @property
    def queued_frames(self) -> int:
        return self.stream.queued_frames if self.stream is not None else 0

    @property
    def rtp_sent(self) -> int:
        return self.stream.rtp_sent if self.stream is not None else 0

    @property
    def rtp_received(self) -> int:
        return self.stream.rtp_received if self.stream is not None else 0

    @property
    def audio_frames_sent(self) -> int:
        return self.stream.audio_frames_sent if self.stream is not None else 0

    @property
    def frames_played_ms(self) -> float:
        return self.stream.frames_played_ms if self.stream is not None else 0.0

    @property
    def lateness(self) -> SampleLog:
        """How late each 20 ms send was (seconds)."""
        return self.stream.lateness if self.stream is not None else self._idle

    @property
    def echo_rtt(self) -> SampleLog:
        """Round trips of our own packets echoed by the peer (seconds)."""
        return self.stream.echo_rtt if self.stream is not None else self._idle

    def _poke(self) -> None:
        self.activity.set()
        self.activity = trio.Event()

    def hangup(self) -> None:
        self.phone.hangup(self)

    async def _media(self, received: trio.MemorySendChannel[bytes]) -> None:
        assert self.media is not None and self._sock is not None and self.stream is not None

        def on_audio(frame: bytes) -> None:
            try:
                received.send_nowait(frame)
            except trio.WouldBlock:
                pass  # the bridge fell behind: this frame is lost

        def on_digit(digit: str) -> None:
            self.digits.append(digit)
            if self.on_digit is not None:
                self.on_digit(digit)

        def on_packet(packet: Received) -> None:
            if packet.rtt is not None:
                self._poke()

        def on_tick(sent: int) -> None:
            if sent:
                self._poke()

        await run_rtp(self._sock, self.stream, self.media.remote_address, on_audio=on_audio,
                      on_digit=on_digit, on_packet=on_packet, on_tick=on_tick)


@attrs.define(eq=False)
class SipPhone(SipAgentShell):
    """One SIP endpoint over UDP (see the module docstring); run with ``nursery.start(phone.run)``."""

    host: str = "127.0.0.1"
    port: int = 0
    user: str = "rtfleet"
    invite_timeout: float = 15.0
    calls: dict[str, PhoneCall] = attrs.field(factory=dict)
    ua: SipUserAgent | None = None
    _sock: stdlib_socket.socket | None = None
    _nursery: trio.Nursery | None = None
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _incoming_send: trio.MemorySendChannel[PhoneCall] = attrs.field(init=False)
    _incoming_recv: trio.MemoryReceiveChannel[PhoneCall] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._incoming_send, self._incoming_recv = trio.open_memory_channel[PhoneCall](64)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        await self._serve(self.host, self.port, lambda port: SipConfig(
            host=self.host, port=port, user=self.user, invite_timeout=self.invite_timeout),
            task_status)

    def _stop_calls(self) -> None:
        for call in list(self.calls.values()):
            self._end(call, "phone stopped")

    def _on_event(self, event: object) -> None:
        if isinstance(event, IncomingCall):
            call = PhoneCall(self, event.call_id, "uas", incoming=event, state="ringing")
            self.calls[event.call_id] = call
            assert self.ua is not None
            self.ua.ring(event.call_id, trio.current_time())
            try:
                self._incoming_send.send_nowait(call)
            except trio.WouldBlock:
                self.ua.reject(event.call_id, trio.current_time(), 486)
            return
        call = self.calls.get(getattr(event, "call_id", ""))
        if call is None:
            return
        if isinstance(event, CallRinging):
            call.state = "ringing"
        elif isinstance(event, CallAnswered):
            self._start_media(call, event.remote_sdp)
        elif isinstance(event, CallConfirmed):
            pass
        elif isinstance(event, (CallEnded, CallCancelled, CallFailed)):
            if isinstance(event, CallFailed):
                call.failure_status = event.status
                self._end(call, f"failed {event.status} {event.reason}", failed=True)
            elif isinstance(event, CallCancelled):
                self._end(call, f"cancelled ({event.by})", failed=not call.up.is_set())
            else:
                self._end(call, f"{event.reason or 'bye'} ({event.by})")

    def _end(self, call: PhoneCall, reason: str, failed: bool = False) -> None:
        if call.ended.is_set():
            return
        call.end_reason = call.end_reason or reason
        call.state = "failed" if failed and not call.up.is_set() else "ended"
        if call._sock is not None and call.media is None:  # else the media task closes it
            call._sock.close()
        self.calls.pop(call.sip_call_id, None)
        call.ended.set()
        call._poke()

    def _new_rtp(self, call: PhoneCall) -> int:
        call._sock = trio.socket.from_stdlib_socket(udp_socket(self.host, 0))
        return call._sock.getsockname()[1]

    def _start_media(self, call: PhoneCall, remote: Any) -> None:
        assert self._nursery is not None
        try:
            call.media = audio_session(call.local_sdp, remote)
        except (SdpNegotiationError, SipError) as exc:
            call.end_reason = f"unusable SDP answer: {exc}"
            self.hangup(call)
            return
        call.stream = RtpStream.create(call.codec, call.media.dtmf.payload_type if call.media.dtmf
                                       else None, jitter=True, track_echo=True)
        send, receive = trio.open_memory_channel[bytes](250)
        call.received, call.frames = send, receive
        call.state = "up"
        call.up.set()
        self._nursery.start_soon(_guarded_media, call, send)

    # -- the call API ---------------------------------------------------------------------

    async def dial(self, target: str, *, destination: tuple[str, int] | None = None,
                   law: int | None = None) -> PhoneCall:
        """Place a call (INVITE with a PCMU/PCMA/telephone-event offer; ``law`` 8 offers PCMA
        first, so a callee that takes the first codec it supports answers A-law); returns at once."""
        assert self.ua is not None
        call = PhoneCall(self, "", "uac")
        port = self._new_rtp(call)
        offer = create_offer(self.host, port, codecs=(PCMA, PCMU, TELEPHONE_EVENT)) if law == 8 \
            else create_offer(self.host, port)
        call.local_sdp = offer
        call.sip_call_id = self.ua.place_call(target, offer.to_bytes(), trio.current_time(),
                                              destination=destination)
        self.calls[call.sip_call_id] = call
        self._flush()
        return call

    async def next_incoming(self) -> PhoneCall:
        return await self._incoming_recv.receive()

    def answer(self, call: PhoneCall) -> None:
        """Answer an incoming call (200 OK with our SDP answer); media starts at once."""
        assert self.ua is not None and call.incoming is not None
        offer = call.incoming.remote_sdp
        if offer is None:
            self.ua.reject(call.sip_call_id, trio.current_time(), 488)
            self._flush()
            raise SdpNegotiationError("the INVITE has no SDP offer")
        port = self._new_rtp(call)
        try:
            answer = create_answer(offer, self.host, port)
        except SdpNegotiationError:
            self.ua.reject(call.sip_call_id, trio.current_time(), 488)
            self._flush()
            raise
        call.local_sdp = answer
        self.ua.answer(call.sip_call_id, answer.to_bytes(), trio.current_time())
        self._start_media(call, offer)
        self._flush()

    def hangup(self, call: PhoneCall) -> None:
        if self.ua is None or call.ended.is_set():
            return
        self.ua.hangup(call.sip_call_id, trio.current_time())
        self._flush()


async def _guarded_media(call: PhoneCall, send: trio.MemorySendChannel[bytes]) -> None:
    """One call's media tasks, until the call ends; an I/O failure hangs the call up."""
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call._media, send)
            await call.ended.wait()
            nursery.cancel_scope.cancel()
    except* OSError:
        call.phone.hangup(call)
    finally:
        send.close()
        call._sock.close()
