"""One WebRTC call of the embedded server: the deterministic model over a peer connection.

A :class:`CallSession` joins three things: a :class:`~.model.RealtimeSession` (the sans-I/O
model), the answered :class:`~.rtc_answer.RtcCall` (data channel + audio track) and any
sideband WebSockets attached with ``/v1/realtime?call_id=…`` (see :func:`run_sideband`).

In: data-channel messages (JSON client events) and sideband frames go to the model as client
events; decoded caller audio from the track (24 kHz mono PCM16) goes to the model's input
buffer and VAD (:meth:`RealtimeSession.receive_audio`).

Out: one sender task takes the model's events in order and

* plays ``response.output_audio.delta`` audio on the track instead of sending it (PROTOCOL.md:
  output audio goes over the media track), announcing it with ``output_audio_buffer.started``;
* once a response's audio has all been played out: ``output_audio_buffer.stopped``;
* a response cancelled by the VAD (``turn_detected``, barge-in) clears the queued audio with
  ``output_audio_buffer.cleared``, as does a client ``output_audio_buffer.clear``; a
  client-cancelled response keeps playing what is queued unless the client clears it;
* sends everything else over the data channel (paced) and to every attached sideband.

Faults (the server's live :class:`~.faults.FaultPlan`): ``drop_after_events`` (counted on the
data channel), ``drop_after_s`` and ``drop_rate`` close the peer connection (``drop_mode`` and
``drop_close_code`` do not apply: a peer connection has no close code); ``expire_after_s`` and
the maximum session length send ``error`` ``session_expired`` then close; ``latency_ms`` delays
events; ``malformed_every`` injects malformed data-channel messages (``oversized`` ones larger
than the peer's ``max-message-size`` cannot be sent and are only counted). ``reject_keys`` is
applied by the HTTP side when a call is made.

This module imports nothing of aiortc itself; the HTTP side (``calls.py``) imports it only once
WebRTC is in use.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import trio

from standin.model.audio import PCM_24K, AudioFormat
from standin.model.config import output_format
from standin.model.events import error_event
from standin.faults.plan import ConnectionFaults, Drop, Expire
from standin.model.realtime import RealtimeSession
from standin.model.timer import ModelTimer

if TYPE_CHECKING:
    from actors.rtc.media import RtcError  # noqa: F401

    from standin.sessions.rtc_answer import RtcCall
    from standin.host import SessionHost
    from standin.records import ConnectionRecord

__all__ = ["CallSession", "to_pcm24k"]

Event = dict[str, Any]
AUDIO_DELTA = "response.output_audio.delta"
_BATCH = 64


def to_pcm24k(fmt: AudioFormat, data: bytes) -> bytes:
    """Output audio in the session's format as PCM16 mono 24 kHz (what the track plays)."""
    if fmt == PCM_24K:
        return data[: len(data) - len(data) % 2]
    samples = np.repeat(fmt.decode(data), PCM_24K.rate // fmt.rate)
    return PCM_24K.encode(samples)


def _encode(event: Event) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


@attrs.frozen
class _Out:
    at: float
    event: Event | None = None
    drained: str | None = None  # a response whose audio has been played out
    close: str | None = None  # close the call after what is queued (the reason)


@attrs.define(eq=False)
class CallSession:
    """The server side of one WebRTC call; ``run(call)`` until the call ends."""

    server: SessionHost
    call_id: str
    session: RealtimeSession
    record: ConnectionRecord | None = None
    call: RtcCall | None = None
    ended: trio.Event = attrs.field(factory=trio.Event)
    end_reason: str = ""
    #: ``output_audio_buffer`` events sent (started, stopped, cleared)
    audio_buffer_events: int = 0
    audio_ms_played: float = 0.0
    _faults: ConnectionFaults | None = None
    _out_send: trio.MemorySendChannel[_Out] = attrs.field(init=False)
    _out_recv: trio.MemoryReceiveChannel[_Out] = attrs.field(init=False)
    _sidebands: list[trio.MemorySendChannel[Event]] = attrs.field(factory=list)
    _model_timer: ModelTimer = attrs.field(
        default=attrs.Factory(lambda self: ModelTimer(self.session), takes_self=True))
    _drain: trio.Event = attrs.field(factory=trio.Event)
    _playing: str | None = None  # the response whose audio is queued or playing
    _audio_done: str | None = None  # ... and all of whose audio has been queued
    _last_played: str | None = None
    _closing: bool = False

    def __attrs_post_init__(self) -> None:
        self._out_send, self._out_recv = trio.open_memory_channel[_Out](math.inf)

    # -- running ------------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        return not self.ended.is_set() and not self._closing

    async def run(self, call: RtcCall) -> None:
        """Run the call (its callbacks must be this object's ``on_*``) until it ends."""
        assert self.record is not None
        self.call = call
        self._faults = ConnectionFaults.for_connection(
            self.server.faults, self.record.index, self.record.connected_at,
            self.server.model_config.max_session_s,
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sender)
                nursery.start_soon(self._timer)
                nursery.start_soon(self._fault_timer)
                nursery.start_soon(self._playout)
                reason = await call.run()
                self.end_reason = self.end_reason or reason
                nursery.cancel_scope.cancel()
        finally:
            self._finish(call)

    def _finish(self, call: RtcCall) -> None:
        self.end_reason = self.end_reason or call.end_reason or "ended"
        record = self.record
        if record is not None and record.closed_by is None:
            record.closed_by = "server" if self._closing else "client"
        if record is not None:
            record.end_reason = self.end_reason
            self.server.close_record(record)
        for channel in self._sidebands:
            channel.close()
        self._sidebands.clear()
        self._out_send.close()
        self.server.calls.pop(self.call_id, None)
        self.server.stats.connections_closed += 1
        self.server.stats.calls_ended += 1
        self.ended.set()

    async def hangup(self, reason: str = "hung up by the server") -> None:
        """Close the call now (bounded); returns once it is closed."""
        if self.call is None:
            return
        self._closing = True
        self.end_reason = self.end_reason or reason
        await self.call.close()
        await self.ended.wait()

    # -- the call's callbacks (see rtc_answer.answer_offer) -------------------------------------

    def on_open(self, call: RtcCall) -> None:
        self._emit(self.session.start())

    def on_message(self, call: RtcCall, message: str | bytes) -> None:
        self.receive_client(message)

    def on_audio(self, call: RtcCall, pcm: bytes) -> None:
        self._emit(self.session.receive_audio(pcm, trio.current_time()))

    # -- input from the data channel or a sideband ---------------------------------------------

    def receive_client(self, message: str | bytes) -> None:
        if not self.live:
            return
        self.server.stats.client_events_received += 1
        now = trio.current_time()
        if isinstance(message, str):
            events = self.session.receive_text(message, now)
        else:
            events = self.session.receive_binary(message, now)
        self._emit(events)

    def attach(self, buffer: int | float = math.inf) -> trio.MemoryReceiveChannel[Event]:
        """A sideband's feed of this call's server events (closed when the call ends)."""
        send, receive = trio.open_memory_channel[Event](buffer)
        if self.ended.is_set():
            send.close()
        else:
            self._sidebands.append(send)
        return receive

    def detach(self, channel: trio.MemoryReceiveChannel[Event]) -> None:
        channel.close()  # the sender drops a closed feed at its next event

    def _emit(self, events: list[Event]) -> None:
        # New model deadlines only ever come with events (a response starting), so a call
        # that only hears silence does not even look at the timer.
        if events and not self.ended.is_set():
            now = trio.current_time()
            for event in events:
                self._out_send.send_nowait(_Out(now, event=event))
            self._model_timer.poke()

    # -- tasks ---------------------------------------------------------------------------------

    async def _timer(self) -> None:
        while True:
            self._emit(await self._model_timer.next())

    async def _fault_timer(self) -> None:
        assert self._faults is not None
        action: Drop | Expire
        while True:
            changed = self.server.faults_changed
            when, action = self._faults.next_timed(self.server.faults, trio.current_time())
            with trio.move_on_at(when) as waited:
                await changed.wait()
            if waited.cancelled_caught:
                break
        now = trio.current_time()
        if isinstance(action, Drop):
            self._out_send.send_nowait(_Out(now, close=f"drop:{action.cause}"))
            return
        if action.cause == "fault":
            self.server.stats.faults.sessions_expired += 1
        else:
            self.server.stats.sessions_ended_max_length += 1
        event = error_event(self.session.ids.new("event"), code="session_expired",
                            message="Your session hit the maximum duration.")
        self._out_send.send_nowait(_Out(now, event=event))
        self._out_send.send_nowait(_Out(now, close="session_expired"))

    async def _playout(self) -> None:
        """Tell the sender when the queued audio of a finished response has been played."""
        assert self.call is not None
        while True:
            await self._drain.wait()
            self._drain = trio.Event()
            response_id = self._audio_done
            await self.call.wait_played()
            if response_id is not None:
                self._out_send.send_nowait(_Out(trio.current_time(), drained=response_id))

    async def _sender(self) -> None:
        call = self.call
        assert call is not None
        from actors.rtc.media import RtcError

        try:
            await call.wait_open()
            async for first in self._out_recv:
                batch = [first]
                while len(batch) < _BATCH:
                    try:
                        batch.append(self._out_recv.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                if not await self._send_batch(batch):
                    return
        except RtcError:
            return  # the peer left: call.run() ends too

    async def _send_batch(self, batch: list[_Out]) -> bool:
        """Send a batch in order; False once the call is being closed."""
        server = self.server
        stats = server.stats
        assert self._faults is not None and self.call is not None
        texts: list[str | bytes] = []
        for out in batch:
            plan = server.faults
            if plan.latency_ms > 0:
                await self._flush(texts)
                await trio.sleep_until(out.at + plan.latency_ms / 1000)
                stats.faults.delayed_events += 1
            if out.close is not None:
                await self._flush(texts)
                await self._close(out.close)
                return False
            for event in self._media(out):
                texts.append(_encode(event))
                self._to_sidebands(event)
                if self.record is not None:
                    self.record.events_sent += 1
                stats.events_sent += 1
                if event["type"] == "error":
                    stats.errors_sent += 1
                malformed, drop = self._faults.after_event(plan)
                if malformed is not None:
                    stats.faults.malformed[malformed] += 1
                    texts.append(self._malformed(malformed, plan.oversized_bytes))
                if drop is not None:
                    await self._flush(texts)
                    await self._close(f"drop:{drop.cause}")
                    return False
        await self._flush(texts)
        return True

    async def _flush(self, texts: list[str | bytes]) -> None:
        if not texts:
            return
        assert self.call is not None
        batch, texts[:] = list(texts), []
        too_large = await self.call.peer.send_texts(batch)
        self.call.events_sent += len(batch) - len(too_large)
        self.server.stats.rtc_messages_too_large += len(too_large)

    async def _close(self, reason: str) -> None:
        assert self.call is not None
        if reason.startswith("drop:"):
            faults = self.server.stats.faults
            faults.drops[reason[len("drop:"):]] += 1
            faults.rtc_calls_closed += 1
        self._closing = True
        self.end_reason = self.end_reason or reason
        await self.call.close()

    def _to_sidebands(self, event: Event) -> None:
        if not self._sidebands:
            return
        for channel in list(self._sidebands):
            try:
                channel.send_nowait(event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._sidebands.remove(channel)

    def _malformed(self, kind: str, oversized_bytes: int) -> str | bytes:
        if kind == "binary":
            return b"\x00rtfleet-fault\xff"
        if kind == "invalid_json":
            return '{"type": "response.output_text.delta", "delta": "trunc'
        text = _encode({"type": f"rtfleet.fault.{kind}", "event_id": self.session.ids.new("event")})
        if kind == "oversized":
            pad = max(0, oversized_bytes - len(text) - len(',"padding":""'))
            text = text[:-1] + ',"padding":"' + "x" * pad + '"}'
        return text

    # -- output audio ----------------------------------------------------------------------------

    def _buffer_event(self, kind: str, response_id: str | None) -> Event:
        self.audio_buffer_events += 1
        return {"type": f"output_audio_buffer.{kind}", "event_id": self.session.ids.new("event"),
                "response_id": response_id}

    def _media(self, out: _Out) -> list[Event]:
        """What to send for one model event, after playing its audio (see the docstring)."""
        assert self.call is not None
        if out.drained is not None:
            if self._playing == out.drained and self._audio_done == out.drained:
                self._playing = self._audio_done = None
                return [self._buffer_event("stopped", out.drained)]
            return []
        event = out.event
        assert event is not None
        kind = event["type"]
        if kind == AUDIO_DELTA:
            return self._play(event)
        if kind == "session.output_audio.delta":  # GPT-Live: on the track, nothing announced
            self._play(event)
            return []
        if kind == "response.done":
            response = event["response"]
            if response["id"] != self._playing:
                return [event]
            details = response.get("status_details") or {}
            if details.get("reason") == "turn_detected":
                self.call.clear_audio()
                self._playing = self._audio_done = None
                return [event, self._buffer_event("cleared", response["id"])]
            self._audio_done = response["id"]
            self._drain.set()
            return [event]
        if kind == "output_audio_buffer.cleared":  # the client's output_audio_buffer.clear
            self.call.clear_audio()
            response_id = self._playing or event.get("response_id") or self._last_played
            self._playing = self._audio_done = None
            self.audio_buffer_events += 1
            return [{**event, "response_id": response_id}]
        return [event]

    def _play(self, event: Event) -> list[Event]:
        assert self.call is not None
        try:
            data = base64.b64decode(event.get("delta") or "", validate=True)
        except (binascii.Error, ValueError):
            return []
        response_id = event.get("response_id")
        out: list[Event] = []
        live_format = getattr(self.session, "output_audio_format", None)  # a Live session
        if live_format is not None:
            pcm = to_pcm24k(live_format, data)
            self.audio_ms_played += PCM_24K.duration_ms(len(pcm))
            self.call.play(pcm)
            return out
        if response_id != self._playing:
            if self._playing is not None:  # a new response's audio supersedes the old
                out.append(self._buffer_event("stopped", self._playing))
            self._playing, self._audio_done = response_id, None
            self._last_played = response_id
            out.append(self._buffer_event("started", response_id))
        pcm = to_pcm24k(AudioFormat.from_session(output_format(self.session.session)), data)
        self.audio_ms_played += PCM_24K.duration_ms(len(pcm))
        self.call.play(pcm)
        return out


async def run_sideband(call: CallSession, record: ConnectionRecord, receive: Any, send: Any) -> None:
    """A ``?call_id=`` WebSocket attached to a live call (already accepted by ``ws.py``).

    It gets a ``session.created`` with the call's session, then every server event of the
    call; its client events go to the call's model. It closes (1000) when the call ends.
    """
    feed = call.attach()
    first = call.session.start()
    server = call.server

    async def send_event(event: Event) -> None:
        await send({"type": "websocket.send", "text": json.dumps(event)})
        record.events_sent += 1
        server.stats.events_sent += 1

    try:
        async with trio.open_nursery() as nursery:

            async def reader() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        record.closed_by = record.closed_by or "client"
                        record.close_code = record.close_code or message.get("code", 1005)
                        nursery.cancel_scope.cancel()
                        return
                    if message["type"] == "websocket.receive":
                        text = message.get("text")
                        call.receive_client(text if text is not None else message.get("bytes") or b"")

            nursery.start_soon(reader)
            for event in first:
                await send_event(event)
            async for event in feed:
                await send_event(event)
            record.close_code, record.closed_by = 1000, "server"
            await send({"type": "websocket.close", "code": 1000, "reason": "call ended"})
            nursery.cancel_scope.cancel()
    finally:
        call.detach(feed)
