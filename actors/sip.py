"""The SIP actor: a phone call (UAC or UAS) bridged to a realtime session.

The phone itself (:class:`~actors.sip_phone.SipPhone`, one UDP SIP endpoint, and its
:class:`~actors.sip_phone.PhoneCall` calls with their RTP streams) is :mod:`actors.sip_phone`;
this module is the actor that bridges one call to a realtime session:

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
from typing import Any, Awaitable, Callable

import attrs
import trio

from actors.credentials import Secret
from actors.events import ConnectionState, EventKind
from actors.exits import ActorExit, ExitReason
from actors.link import SessionLink
from actors.proto.audio import AudioConverter, g711_decode, g711_encode, ulaw_encode
from actors.proto.rtp.stream import FRAME
from actors.proto.sip import SipError
from actors.websocket import ConnectParams, run_websocket
from actors.sip_phone import PhoneCall, SipPhone

__all__ = ["SipOptions", "current_call", "plan_call", "run_sip"]

APPEND = "input_audio_buffer.append"


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
    #: UAC: the G.711 law offered first (0 PCMU µ-law, 8 PCMA A-law; both are offered)
    law: int = 0
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
                call = await phone.dial(options.target, destination=options.destination,
                                        law=options.law)
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
