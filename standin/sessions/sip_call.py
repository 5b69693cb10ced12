"""One accepted SIP call of the embedded server: the deterministic model over RTP.

A :class:`SipMediaCall` joins the sans-I/O model (:class:`~.model.RealtimeSession`), one RTP
socket (UDP, 127.0.0.1, an ephemeral port put in the SDP answer) and any sideband WebSockets
attached with ``/v1/realtime?call_id=…``. It has the interface ``ws.run_sideband`` and the
``/hangup`` route use for WebRTC calls (``live``, ``session``, ``attach``, ``detach``,
``receive_client``, ``hangup``), so it sits in ``server.calls`` beside them.

RTP runs on the shared :class:`~actors.proto.rtp.stream.RtpStream` (sans-I/O) and its trio
shell :func:`actors.rtp_shell.run_rtp` (the SIP actor's calls run on the same two).

In: G.711 payloads are decoded, resampled 8 -> 24 kHz and fed to the model's input buffer and
VAD (``receive_audio``); RFC 4733 telephone events become
``input_audio_buffer.dtmf_event_received`` for the sidebands.

Out: model events are handled as they are made (no queue): ``response.output_audio.delta``
audio is converted to 8 kHz G.711 and queued on the stream (announced with
``output_audio_buffer.started``); a response cancelled by barge-in (``turn_detected``) or a
client ``output_audio_buffer.clear`` flushes the queue (``output_audio_buffer.cleared``);
when a finished response's audio has all been played, ``output_audio_buffer.stopped``;
every other event goes to the sidebands. The stream sends a frame every 20 ms, from the
process's audio clock (:mod:`actors.pacer`, one task for every call): queued audio, or
silence, so the caller hears continuous RTP; its lateness (send time minus due time) is
recorded.

Faults (the server's live :class:`~.faults.FaultPlan`), as they make sense for a call: each
sideband gets its events through a relay task that applies ``latency_ms`` and the drops
(``drop_after_events`` counted per sideband, ``drop_rate``, ``drop_after_s`` from when it
attached): a drop closes that sideband, **not the call** (the RTP goes on and a client may
attach again with the same ``call_id``); ``expire_after_s`` (from the accept) ends the call
the way the hosted session limit does: ``error`` ``session_expired`` to the sidebands, then BYE.
A sideband drop is a close (code 1000 from ``run_sideband``), never an abortive TCP close: only
the WebSocket handler holds the socket. ``malformed_every`` is not applied to sidebands.

Not modelled for SIP calls: a jitter buffer (loopback does not reorder), re-INVITE media
changes.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio

from actors.proto.audio import AudioConverter, g711_decode, g711_encode
from actors.proto.rtp.samples import SampleLog
from actors.proto.rtp.stream import FRAME, Received, RtpStream
from actors.rtp_shell import run_rtp
from actors.proto.sip import AudioSession

from standin.model.audio import AudioFormat
from standin.model.config import output_format
from standin.model.events import error_event
from standin.model.realtime import RealtimeSession
from standin.model.timer import ModelTimer
from standin.sessions.rtc_session import to_pcm24k
from standin.faults.sip_relay import relay_sideband

if TYPE_CHECKING:
    from collections import deque

    from standin.host import SessionHost
    from standin.records import ConnectionRecord

__all__ = ["CallOwner", "SipMediaCall"]

Event = dict[str, Any]
AUDIO_DELTA = "response.output_audio.delta"
LIVE_AUDIO_DELTA = "session.output_audio.delta"


class CallOwner(Protocol):
    """What a call needs of the SIP user agent server that answered it (``sip_uas.SipUas``)."""

    server: SessionHost
    stats: Any  # sip_uas.SipStats
    finished: deque[Any]

    @property
    def nursery(self) -> trio.Nursery | None: ...

    def hangup_sip(self, sip_call_id: str) -> None: ...


@attrs.define(eq=False)
class SipMediaCall:
    uas: CallOwner
    call_id: str  # the API id (rtc_…)
    sip_call_id: str
    session: RealtimeSession
    media: AudioSession
    sock: Any  # trio UDP socket, bound
    record: ConnectionRecord | None = None
    ended: trio.Event = attrs.field(factory=trio.Event)
    end_reason: str = ""
    dtmf_digits: list[str] = attrs.field(factory=list)
    audio_buffer_events: int = 0
    #: each attached sideband's relay input: (event, when it was made)
    _sidebands: list[trio.MemorySendChannel[tuple[Event, float]]] = attrs.field(factory=list)
    accepted_at: float = attrs.field(factory=trio.current_time)
    ended_at: float | None = None
    _partial: bytes = b""
    _playing: str | None = None  # response whose audio is queued/playing
    _audio_done: str | None = None  # ... all of whose audio has been queued
    _model_timer: ModelTimer = attrs.field(
        default=attrs.Factory(lambda self: ModelTimer(self.session), takes_self=True))
    _closing: bool = False
    _cancel: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    stream: RtpStream = attrs.field(init=False)
    _upsample: AudioConverter = attrs.field(factory=lambda: AudioConverter(8000, 24000))
    _downsample: AudioConverter = attrs.field(factory=lambda: AudioConverter(24000, 8000))

    def __attrs_post_init__(self) -> None:
        dtmf = self.media.dtmf.payload_type if self.media.dtmf else None
        self.stream = RtpStream.create(self.media.codec.payload_type, dtmf, lateness_limit=50_000)

    @property
    def server(self) -> Any:
        return self.uas.server

    # the RTP counters (see ``RtpStream``)
    @property
    def rtp_received(self) -> int:
        return self.stream.rtp_received

    @property
    def rtp_sent(self) -> int:
        return self.stream.rtp_sent

    @property
    def audio_frames_sent(self) -> int:
        """Frames of model audio (not silence) sent."""
        return self.stream.audio_frames_sent

    @property
    def lateness(self) -> SampleLog:
        return self.stream.lateness

    @property
    def live(self) -> bool:
        return not self.ended.is_set() and not self._closing

    # -- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Until the call ends (BYE either way, hangup) or the server stops."""
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(partial(
                        run_rtp, self.sock, self.stream, self.media.remote_address,
                        on_audio=self._heard, on_digit=self._digit, on_packet=self._packet_in,
                        on_tick=self._ticked))
                    nursery.start_soon(self._timer)
                    nursery.start_soon(self._expiry)
                    self._emit(self.session.start())
                    await trio.sleep_forever()
        finally:
            self._finish()

    def end(self, reason: str) -> None:
        """The SIP side ended (BYE, CANCEL, failure): stop the media now."""
        self.end_reason = self.end_reason or reason
        self._cancel.cancel()

    async def hangup(self, reason: str = "hung up by the server") -> None:
        """Send BYE and return once the call has ended (bounded)."""
        if self.ended.is_set():
            return
        self._closing = True
        self.end_reason = self.end_reason or reason
        self.uas.hangup_sip(self.sip_call_id)
        with trio.move_on_after(5):
            await self.ended.wait()
        self._cancel.cancel()
        await self.ended.wait()

    def _finish(self) -> None:
        if self.ended.is_set():
            return
        self.end_reason = self.end_reason or "ended"
        self.ended_at = trio.current_time()
        self.sock.close()
        close = getattr(self.session, "close", None)  # Live sidebands learn why it ended
        if close is not None:
            for event in close("close_requested" if self._closing else "remote_hangup"):
                self._to_sidebands(event)
        record = self.record
        if record is not None:
            record.closed_by = record.closed_by or ("server" if self._closing else "client")
            record.end_reason = self.end_reason
            self.server.close_record(record)
        for channel in self._sidebands:
            channel.close()
        self._sidebands.clear()
        if self.server.calls.get(self.call_id) is self:
            del self.server.calls[self.call_id]
        self.server.stats.connections_closed += 1
        self.uas.stats.calls_ended += 1
        self.uas.finished.append(self)
        self.ended.set()

    # -- sidebands ------------------------------------------------------------------------

    def attach(self, buffer: int | float = math.inf) -> trio.MemoryReceiveChannel[Event]:
        """A sideband's event feed (closed when the call ends, or by a drop fault)."""
        send, receive = trio.open_memory_channel[Event](buffer)
        if self.ended.is_set() or self.uas.nursery is None:
            send.close()
            return receive
        inner_send, inner_receive = trio.open_memory_channel[tuple[Event, float]](math.inf)
        self._sidebands.append(inner_send)
        self.uas.stats.sidebands_attached += 1
        # in the UAS's nursery, not the call's: what is queued when the call ends still goes out
        self.uas.nursery.start_soon(relay_sideband, self.server, inner_receive, send,
                                     self.uas.stats.sidebands_attached, self.uas.stats)
        return receive

    def detach(self, channel: trio.MemoryReceiveChannel[Event]) -> None:
        channel.close()

    def receive_client(self, message: str | bytes) -> None:
        if not self.live:
            return
        self.server.stats.client_events_received += 1
        now = trio.current_time()
        if isinstance(message, str):
            self._emit(self.session.receive_text(message, now))
        else:
            self._emit(self.session.receive_binary(message, now))

    def _to_sidebands(self, event: Event) -> None:
        if self.record is not None:
            self.record.events_sent += 1
        self.server.stats.events_sent += 1
        now = trio.current_time()
        for channel in list(self._sidebands):
            try:
                channel.send_nowait((event, now))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._sidebands.remove(channel)

    # -- model output ------------------------------------------------------------------------

    def _emit(self, events: list[Event]) -> None:
        if not events or self.ended.is_set():
            return
        for event in events:
            for out in self._media(event):
                self._to_sidebands(out)
        self._model_timer.poke()

    def _buffer_event(self, kind: str, response_id: str | None) -> Event:
        self.audio_buffer_events += 1
        return {"type": f"output_audio_buffer.{kind}", "event_id": self.session.ids.new("event"),
                "response_id": response_id or ""}

    def _media(self, event: Event) -> list[Event]:
        kind = event["type"]
        if kind == AUDIO_DELTA:
            return self._queue_audio(event)
        if kind == LIVE_AUDIO_DELTA:  # GPT-Live: played, and reflected to the sidebands as is
            self._queue_audio(event)
            return [event]
        if kind == "response.done":
            response = event["response"]
            if response["id"] != self._playing:
                return [event]
            if (response.get("status_details") or {}).get("reason") == "turn_detected":
                self._clear()
                return [event, self._buffer_event("cleared", response["id"])]
            self._audio_done = response["id"]
            return [event]
        if kind == "output_audio_buffer.cleared":  # the client's output_audio_buffer.clear
            response_id = self._playing or event.get("response_id")
            self._clear()
            self.audio_buffer_events += 1
            return [{**event, "response_id": response_id or ""}]
        return [event]

    def _queue_audio(self, event: Event) -> list[Event]:
        try:
            data = base64.b64decode(event.get("delta") or "", validate=True)
        except (binascii.Error, ValueError):
            return []
        out: list[Event] = []
        response_id = event.get("response_id")
        if event["type"] == LIVE_AUDIO_DELTA:
            response_id = None  # Live has no responses (nor output_audio_buffer events)
        elif response_id != self._playing:
            if self._playing is not None:
                out.append(self._buffer_event("stopped", self._playing))
            self._playing, self._audio_done = response_id, None
            out.append(self._buffer_event("started", response_id))
        live_format = getattr(self.session, "output_audio_format", None)  # a Live session
        fmt = live_format or AudioFormat.from_session(output_format(self.session.session))
        pcm24 = to_pcm24k(fmt, data)
        g711 = self._partial + g711_encode(self.media.codec.payload_type,
                                           self._downsample.process(pcm24))
        whole = len(g711) - len(g711) % FRAME
        self.stream.play([g711[i:i + FRAME] for i in range(0, whole, FRAME)])
        self._partial = g711[whole:]
        return out

    def _clear(self) -> None:
        self.stream.clear()
        self._partial = b""
        self._playing = self._audio_done = None

    # -- tasks --------------------------------------------------------------------------------

    async def _timer(self) -> None:
        while True:
            self._emit(await self._model_timer.next())

    async def _expiry(self) -> None:
        """``expire_after_s`` of the live fault plan, from the accept: the call ends."""
        server = self.server
        while True:
            changed, plan = server.faults_changed, server.faults
            due = math.inf if plan.expire_after_s is None else self.accepted_at + plan.expire_after_s
            with trio.move_on_at(due) as waited:
                await changed.wait()
            if waited.cancelled_caught:
                break
        server.stats.faults.sessions_expired += 1
        expired = getattr(self.session, "expired", None)  # Live: session.closed "expired"
        for event in (expired() if expired is not None else [error_event(
                self.session.ids.new("event"), code="session_expired",
                message="Your session hit the maximum duration.")]):
            self._to_sidebands(event)
        self._closing = True
        self.end_reason = self.end_reason or "session expired"
        self.uas.hangup_sip(self.sip_call_id)

    # -- RTP (called by ``run_rtp``) ---------------------------------------------------------

    def _packet_in(self, _packet: Received) -> None:
        self.uas.stats.rtp_received += 1

    def _heard(self, g711: bytes) -> None:
        pcm = self._upsample.process(g711_decode(self.media.codec.payload_type, g711))
        self._emit(self.session.receive_audio(pcm, trio.current_time()))

    def _digit(self, digit: str) -> None:
        self.dtmf_digits.append(digit)
        if hasattr(self.session, "expired"):  # GPT-Live's name for it
            self._to_sidebands({"type": "transport.dtmf.received", "event": digit,
                                "event_id": self.session.ids.new("event")})
            return
        self._to_sidebands({
            "type": "input_audio_buffer.dtmf_event_received",
            "event_id": self.session.ids.new("event"),
            "event": digit, "received_at": int(time.time()),
        })

    def _ticked(self, sent: int) -> None:
        self.uas.stats.rtp_sent += sent
        if not self.stream.queued_frames and self._audio_done is not None \
                and self._audio_done == self._playing:
            self._to_sidebands(self._buffer_event("stopped", self._playing))
            self._playing = self._audio_done = None
