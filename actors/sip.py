"""The SIP actor: a phone call (UAC or UAS) bridged to a realtime session.

Two layers:

* :class:`SipPhone` is one UDP SIP endpoint (an I/O shell around the sans-I/O
  :class:`~actors.proto.sip.SipUserAgent`: one socket, one timer, events to calls). It
  places calls (:meth:`SipPhone.dial`) and hands incoming ones out
  (:meth:`SipPhone.next_incoming`); each call is a :class:`PhoneCall` with its own RTP socket
  and a sans-I/O :class:`~actors.proto.rtp.stream.RtpStream` (the same one the embedded
  server's calls use) run by :func:`actors.rtp_shell.run_rtp`: RTP in through a jitter buffer,
  RFC 4733 DTMF, and one G.711 frame every 20 ms on the stream's own schedule (queued audio,
  else silence), with its lateness and, per sequence number, when each frame left (so an
  echoing peer's round trip can be measured).
* :func:`run_sip` has the actor contract (``run_x(link, params, *, task_status) ->
  ActorExit``; options via ``functools.partial(run_sip, options=SipOptions(...))``). It gets
  a call up (dials ``options.target``, or answers ``options.incoming``), then keeps a realtime
  WebSocket session for it (:func:`~actors.websocket.run_websocket` with ``params``):

  - phone audio in -> ``input_audio_buffer.append``: PCM16 24 kHz (G.711 decoded and
    upsampled), or the G.711 µ-law bytes as they are when the session's input format is
    ``audio/pcmu``;
  - ``response.output_audio.delta`` -> 8 kHz G.711 frames -> RTP (paced 20 ms);
  - barge-in: on ``input_audio_buffer.speech_started`` while playing, the queued audio is
    dropped and ``conversation.item.truncate`` is sent with the milliseconds actually played;
  - DTMF digits -> ``info`` events ``{"event": "sip.dtmf", "digit"}``; call progress ->
    ``info`` events ``sip.*``.

  States: *connecting* while dialling or ringing; *connected* once the call is up and the
  realtime session is ready (``task_status.started()``); a lost realtime socket makes it
  *reconnecting* and the actor reconnects by itself (full-jitter backoff, ``max_reconnects``)
  **without dropping the call**; the call's end returns ``NORMAL`` (use the ``transient``
  restart policy for calls, so that a finished call is not dialled again). A call that
  cannot be set up returns ``DROPPED`` (timeout, 408/5xx) or ``FATAL`` (other 4xx-6xx).

Nothing here imports ``orchestrator``.
"""

from __future__ import annotations

import base64
import binascii
import random
import socket as stdlib_socket
from typing import Any, Awaitable, Callable

import attrs
import trio

from actors.credentials import Secret
from actors.events import ConnectionState, EventKind
from actors.exits import ActorExit, ExitReason
from actors.link import SessionLink
from actors.proto.audio import AudioConverter, g711_decode, g711_encode, ulaw_encode
from actors.proto.rtp.samples import SampleLog
from actors.proto.rtp.stream import FRAME, Received, RtpStream
from actors.proto.sip import (AudioSession, CallAnswered, CallCancelled, CallConfirmed,
                              CallEnded, CallFailed, CallRinging, IncomingCall, SdpNegotiationError,
                              SipConfig, SipError, SipUserAgent, audio_session, create_answer,
                              create_offer)
from actors.rtp_shell import run_rtp
from actors.sip_shell import SipAgentShell, udp_socket
from actors.websocket import ConnectParams, run_websocket

__all__ = ["PhoneCall", "SipOptions", "SipPhone", "current_call", "plan_call", "run_sip"]

APPEND = "input_audio_buffer.append"


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
        g711 = g711_encode(self.codec, pcm8)
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

    async def dial(self, target: str, *, destination: tuple[str, int] | None = None) -> PhoneCall:
        """Place a call (INVITE with a PCMU/PCMA/telephone-event offer); returns at once."""
        assert self.ua is not None
        call = PhoneCall(self, "", "uac")
        port = self._new_rtp(call)
        offer = create_offer(self.host, port)
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


# -- the actor ---------------------------------------------------------------------------


@attrs.frozen
class SipOptions:
    """SIP-only settings of the actor (``functools.partial(run_sip, options=...)``)."""

    phone: SipPhone
    #: UAC: the SIP URI to call; UAS: leave None and give ``incoming``
    target: str | None = None
    destination: tuple[str, int] | None = None
    incoming: PhoneCall | None = None
    #: "auto" (the session's input format), "pcm" (PCM16 24 kHz) or "pcmu" (pass-through)
    input_audio: str = "auto"
    #: frames (20 ms) per ``input_audio_buffer.append``
    append_frames: int = 2
    setup_timeout: float = 20.0
    max_reconnects: int = 20
    reconnect_base: float = 0.1
    reconnect_cap: float = 2.0
    #: hang up when the session is stopped (else leave the call to its peer)
    hangup_on_stop: bool = True
    #: a fresh credential for each realtime reconnect with the call held, e.g.
    #: ``fleet.keys.credential`` (called as ``await credentials()``, and with ``force=True``
    #: after an authentication failure); None reuses the credential the actor was started with,
    #: which fails once an ephemeral key has expired
    credentials: Callable[..., Awaitable[Secret]] | None = None
    #: sideband mode: the service answers the call itself (audio goes by RTP between the phone
    #: and the service) and the realtime session is the call's sideband ``?call_id=…``; this
    #: gives the service's call id for our SIP Call-ID (``await call_id(sip_call_id)``, e.g.
    #: :meth:`orchestrator.sip_controller.SipController.call_id_for`, from the
    #: ``realtime.call.incoming`` webhook). None: the actor bridges audio to its own session.
    call_id: Callable[[str], Awaitable[str]] | None = None


#: options of fleet sessions by session id (``plan_call``), for ``fleet.add_session(transport="sip")``
_PLANS: dict[str, SipOptions] = {}


def plan_call(session_id: str, options: SipOptions) -> None:
    """Give the SIP options for a fleet session before ``fleet.add_session(session_id,
    transport="sip", policy="transient")`` (the fleet's actor is plain ``run_sip``)."""
    _PLANS[session_id] = options


async def run_sip(link: SessionLink, params: ConnectParams, *, options: SipOptions | None = None,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> ActorExit:
    options = options or _PLANS.get(link.session_id)
    if options is None:
        return ActorExit(ExitReason.FATAL, None, "no SipOptions: use functools.partial(run_sip, "
                         "options=...) or plan_call(session_id, options)")
    phone = options.phone
    call = options.incoming
    try:
        with trio.move_on_after(options.setup_timeout) as setup:
            if call is None:
                if options.target is None:
                    return ActorExit(ExitReason.FATAL, None, "SipOptions needs a target or an incoming call")
                call = await phone.dial(options.target, destination=options.destination)
                link.emit(EventKind.INFO, {"event": "sip.dialing", "target": options.target,
                                           "sip_call_id": call.sip_call_id})
            else:
                phone.answer(call)
                link.emit(EventKind.INFO, {"event": "sip.answered", "sip_call_id": call.sip_call_id})
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_when, call.ended, nursery.cancel_scope)
                await call.up.wait()
                if options.call_id is not None:
                    service_call = await options.call_id(call.sip_call_id)
                    params = attrs.evolve(params, call_id=service_call, model=None)
                    link.emit(EventKind.INFO, {"event": "sip.sideband", "call_id": service_call,
                                               "sip_call_id": call.sip_call_id})
                nursery.cancel_scope.cancel()
    except (SipError, OSError) as exc:
        return ActorExit(ExitReason.FATAL, None, f"sip: {exc}")
    if setup.cancelled_caught:
        phone.hangup(call)
        return ActorExit(ExitReason.DROPPED, None, "sip: call setup timed out")
    if not call.up.is_set():
        status = call.failure_status
        reason = ExitReason.DROPPED if status in (None, 408, 480, 486) or (status or 0) >= 500 \
            else ExitReason.FATAL
        return ActorExit(reason, status, f"sip: {call.end_reason}")
    if call.ended.is_set():  # ended while the sideband was being looked up
        return ActorExit(ExitReason.DROPPED, None, f"sip: call ended before its sideband: {call.end_reason}")
    link.emit(EventKind.INFO, {"event": "sip.up", "sip_call_id": call.sip_call_id,
                               "codec": call.media.codec.name if call.media else None})
    bridge = _Bridge(link, call, options, sideband=params.call_id is not None)
    call.on_digit = bridge.on_digit
    _CALLS[link.session_id] = call
    try:
        return await bridge.run(params, task_status)
    finally:
        if _CALLS.get(link.session_id) is call:
            del _CALLS[link.session_id]
        if options.hangup_on_stop or not link.stop_requested.is_set():
            phone.hangup(call)


#: the call of each running SIP session (``current_call``)
_CALLS: dict[str, PhoneCall] = {}


def current_call(session_id: str) -> PhoneCall | None:
    """The phone call a running SIP session holds (None before it is up or after it ended):
    what a script plays to the service goes through it (:meth:`PhoneCall.play_pcm`)."""
    return _CALLS.get(session_id)


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


@attrs.define(eq=False)
class _Bridge:
    link: SessionLink
    call: PhoneCall
    options: SipOptions
    #: the session is the call's sideband: no audio through it (the phone and the service
    #: exchange RTP directly)
    sideband: bool = False
    started_once: bool = False
    playing_item: str | None = None
    played_ms: float = 0.0  # of the current assistant item
    truncations: int = 0
    _rng: random.Random = attrs.field(factory=random.Random)
    _up: AudioConverter = attrs.field(factory=lambda: AudioConverter(8000, 24000))
    _down: AudioConverter = attrs.field(factory=lambda: AudioConverter(24000, 8000))
    _partial: bytes = b""
    _played_base: float = 0.0  # call.frames_played_ms when the current item started
    _audio_done: bool = False  # response.output_audio.done seen for the current item

    def on_digit(self, digit: str) -> None:
        self.link.emit(EventKind.INFO, {"event": "sip.dtmf", "digit": digit})

    async def run(self, params: ConnectParams, task_status: trio.TaskStatus[None]) -> ActorExit:
        link, call = self.link, self.call
        original = link.publish

        def tap(event: Any) -> None:
            original(event)
            if event.kind is EventKind.SERVER:
                self.on_server(event.payload)

        link.publish = tap
        attempts = 0
        started = auth_retried = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._discard_audio if self.sideband else self._audio_in)
                while True:
                    status = _InnerStatus(self, task_status)
                    with trio.CancelScope() as scope:
                        nursery.start_soon(_cancel_when, call.ended, scope)
                        exit = await run_websocket(link, params, task_status=status)
                    if call.ended.is_set():
                        nursery.cancel_scope.cancel()
                        return ActorExit(ExitReason.NORMAL, 1000, f"call ended: {call.end_reason}")
                    refresh = self.options.credentials
                    auth_retry = (exit.reason is ExitReason.AUTH and refresh is not None
                                  and started and not auth_retried)
                    if link.stop_requested.is_set() or exit.reason in (ExitReason.FATAL, ExitReason.CRASH) \
                            or exit.reason is ExitReason.AUTH and not auth_retry:
                        nursery.cancel_scope.cancel()
                        return exit
                    auth_retried = auth_retry
                    if status.connected:
                        attempts = 0
                        started, auth_retried = True, False
                    attempts += 1
                    if attempts > self.options.max_reconnects:
                        nursery.cancel_scope.cancel()
                        return exit
                    if link.state is ConnectionState.CONNECTED:
                        link.set_state(ConnectionState.RECONNECTING,
                                       f"realtime socket lost, call held ({exit.reason.value})")
                    self._reset_playback()
                    if exit.reason is not ExitReason.RECYCLE:
                        cap = min(self.options.reconnect_cap, self.options.reconnect_base * 2 ** attempts)
                        await trio.sleep(self._rng.uniform(0, cap))
                    if refresh is not None:  # never reuse a credential that may have expired
                        try:
                            fresh = await (refresh(force=True) if auth_retry else refresh())
                        except Exception as exc:  # a mint failure: retry with the backoff
                            link.emit(EventKind.INFO, {"event": "sip.credential_failed",
                                                       "detail": type(exc).__name__})
                        else:
                            params = attrs.evolve(params, credential=fresh)
        finally:
            link.publish = original

    # -- realtime -> phone ------------------------------------------------------------------

    def on_server(self, event: dict[str, Any]) -> None:
        if self.sideband:
            return  # the service plays its audio to the phone itself
        kind = event["type"]
        if kind == "response.output_audio.delta":
            self._play(event)
        elif kind == "response.output_audio.done":
            if event.get("item_id") == self.playing_item:
                self._audio_done = True
        elif kind == "input_audio_buffer.speech_started":
            self._barge_in()

    def _output_format(self) -> str:
        config = self.link.core.config
        fmt = dict(config.output_format) if config is not None else {}
        return str(fmt.get("type", "audio/pcm"))

    def _play(self, event: dict[str, Any]) -> None:
        try:
            data = base64.b64decode(event.get("delta") or "", validate=True)
        except (binascii.Error, ValueError):
            return
        item_id = event.get("item_id")
        if item_id != self.playing_item:
            self.playing_item = item_id
            self._audio_done = False
            self._played_base = self.call.frames_played_ms + self.call.queued_frames * 20
        kind = self._output_format()
        codec = self.call.codec
        if kind == "audio/pcmu" and codec == 0 or kind == "audio/pcma" and codec == 8:
            g711 = self._partial + data
        else:
            if kind == "audio/pcmu":
                pcm8 = g711_decode(0, data)
            elif kind == "audio/pcma":
                pcm8 = g711_decode(8, data)
            else:
                pcm8 = self._down.process(data[: len(data) - len(data) % 2])
            g711 = self._partial + g711_encode(codec, pcm8)
        whole = len(g711) - len(g711) % FRAME
        self.call.play([g711[i:i + FRAME] for i in range(0, whole, FRAME)])
        self._partial = g711[whole:]

    def _barge_in(self) -> None:
        # an item still streaming is being played even when its received audio has all gone
        # out (a real-time stream empties the queue between deltas); only an item whose audio
        # is complete and fully played has nothing to truncate
        if self.playing_item is None or self.call.queued_frames == 0 and self._audio_done:
            return
        self.call.clear()
        self._partial = b""
        played = max(0, int(self.call.frames_played_ms - self._played_base))
        item_id, self.playing_item = self.playing_item, None
        self.truncations += 1
        try:
            self.link.send_nowait({"type": "conversation.item.truncate", "item_id": item_id,
                                   "content_index": 0, "audio_end_ms": played})
        except Exception as exc:  # QueueFull: the truncate is best effort
            self.link.emit(EventKind.INFO, {"event": "sip.truncate_failed", "detail": str(exc)})

    def _reset_playback(self) -> None:
        self.call.clear()
        self._partial = b""
        self.playing_item = None

    # -- phone -> realtime --------------------------------------------------------------------

    def _input_mode(self) -> str:
        if self.options.input_audio != "auto":
            return self.options.input_audio
        config = self.link.core.config
        fmt = dict(config.input_format) if config is not None else {}
        return "pcmu" if fmt.get("type") == "audio/pcmu" else "pcm"

    async def _discard_audio(self) -> None:
        """Sideband mode: what the phone hears is not forwarded (the service sent it)."""
        frames = self.call.frames
        assert frames is not None
        async for _ in frames:
            pass

    async def _audio_in(self) -> None:
        frames = self.call.frames
        assert frames is not None
        batch: list[bytes] = []
        codec = self.call.codec
        async for frame in frames:
            batch.append(frame)
            if len(batch) < self.options.append_frames:
                continue
            g711, batch = b"".join(batch), []
            if self._input_mode() == "pcmu":
                audio = g711 if codec == 0 else ulaw_encode(g711_decode(codec, g711))
            else:
                audio = self._up.process(g711_decode(codec, g711))
            if self.link.core.ready:
                self.link.send_nowait({"type": APPEND, "audio": base64.b64encode(audio).decode()})


class _InnerStatus:
    """The ``task_status`` given to the realtime connection: the first start is the actor's;
    later ones (after a reconnect with the call held) move the state back to connected."""

    def __init__(self, bridge: _Bridge, outer: trio.TaskStatus[None]) -> None:
        self.bridge, self.outer, self.connected = bridge, outer, False

    def started(self, value: object = None) -> None:
        self.connected = True
        link = self.bridge.link
        if not self.bridge.started_once:
            self.bridge.started_once = True
            self.outer.started()
        elif link.state is ConnectionState.RECONNECTING:
            link.set_state(ConnectionState.CONNECTED, "realtime reconnected, call held")
