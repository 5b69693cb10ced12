"""The sans-I/O core of the Media Streams bridge: one provider connection's state.

:class:`MediaStreamsCall` takes the provider's JSON text frames (``receive_provider``) and the
call's realtime server events (``receive_realtime``) and returns the actions to perform, in
order: :class:`ToProvider`, :class:`ToRealtime`, :class:`OpenSession`, :class:`EndCall`,
:class:`Notice`. It does no I/O and never raises for a malformed frame (it counts it and
returns a ``media_streams.malformed`` notice). The message flow is described in
:mod:`orchestrator.media_streams`; the trio shell that performs the actions is
:mod:`orchestrator.media_streams.bridge`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import itertools
import json
from collections.abc import Mapping
from typing import Any, Union

import attrs

__all__ = [
    "MediaStreamsCall", "CallPhase", "Action",
    "ToProvider", "ToRealtime", "OpenSession", "EndCall", "Notice", "FRAME_BYTES",
]

#: 20 ms of 8 kHz µ-law
FRAME_BYTES = 160
_BYTES_PER_MS = 8
_SILENCE = 0xFF  # µ-law +0


# -- actions (what the shell does) ----------------------------------------------------------

@attrs.frozen
class ToProvider:
    """A JSON message for the provider socket."""
    message: dict[str, Any]


@attrs.frozen
class ToRealtime:
    """A client event for the call's realtime session."""
    event: dict[str, Any]


@attrs.frozen
class OpenSession:
    """``start`` arrived: open the realtime session."""
    stream_sid: str
    call_sid: str | None
    parameters: dict[str, Any]


@attrs.frozen
class EndCall:
    """The call is over: remove the session; ``close_code`` set: close the provider socket."""
    reason: str
    close_code: int | None = None


@attrs.frozen
class Notice:
    """Something to publish as a fleet ``info`` event and log (``event``: its name)."""
    event: str
    detail: dict[str, Any]


Action = Union[ToProvider, ToRealtime, OpenSession, EndCall, Notice]


class CallPhase(enum.StrEnum):
    NEW = "new"
    CONNECTED = "connected"
    STREAMING = "streaming"
    ENDED = "ended"


@attrs.define
class _Playback:
    """One assistant item's audio on its way to the phone."""
    item_id: str
    partial: bytearray = attrs.field(factory=bytearray)
    sent_bytes: int = 0  # real audio bytes in frames sent (padding excluded)
    acked_ms: int = 0  # up to the last mark the provider echoed
    done: bool = False

    @property
    def sent_ms(self) -> int:
        return self.sent_bytes // _BYTES_PER_MS


@attrs.define
class MediaStreamsCall:
    """One provider connection's state (sans-I/O): ``receive_provider`` takes a text frame,
    ``receive_realtime`` a realtime server event; both return the actions to perform, in order."""

    dtmf: str = attrs.field(default="info", validator=attrs.validators.in_(("info", "text")))
    phase: CallPhase = CallPhase.NEW
    stream_sid: str | None = None
    call_sid: str | None = None
    #: the latest inbound media timestamp (ms of the call clock)
    media_timestamp: int = 0
    media_in: int = 0
    frames_out: int = 0
    marks_sent: int = 0
    marks_acked: int = 0
    clears: int = 0
    malformed: int = 0
    dropped_deltas: int = 0
    digits: list[str] = attrs.field(factory=list)
    truncations: list[dict[str, Any]] = attrs.field(factory=list)
    _playing: _Playback | None = None
    _marks: dict[str, tuple[str, int]] = attrs.field(factory=dict)  # name -> (item, end ms)
    _cleared_marks: set[str] = attrs.field(factory=set)
    _interrupted: set[str] = attrs.field(factory=set)
    _mark_numbers: itertools.count = attrs.field(factory=lambda: itertools.count(1))

    # -- provider -> bridge ---------------------------------------------------------------

    def receive_provider(self, text: str | bytes) -> list[Action]:
        if isinstance(text, bytes):
            return self._malformed("binary frame (Media Streams frames are JSON text)")
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):
            return self._malformed("not JSON")
        if not isinstance(msg, dict):
            return self._malformed("not a JSON object")
        kind = msg.get("event")
        handler = _PROVIDER_HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return self._malformed(f"unknown event {kind!r}")
        if self.phase is CallPhase.ENDED:
            return self._malformed(f"{kind!r} after the call ended")
        sid = msg.get("streamSid")
        if self.stream_sid is not None and sid is not None and sid != self.stream_sid:
            return self._malformed(f"{kind!r} for another stream {sid!r}")
        return handler(self, msg)

    def _on_connected(self, msg: dict[str, Any]) -> list[Action]:
        if self.phase is CallPhase.NEW:
            self.phase = CallPhase.CONNECTED
        return []

    def _on_start(self, msg: dict[str, Any]) -> list[Action]:
        if self.phase is CallPhase.STREAMING:
            return self._malformed("a second 'start'")
        start = msg.get("start")
        if not isinstance(start, dict):
            return self._malformed("'start' without a start object")
        sid = msg.get("streamSid", start.get("streamSid"))
        if not isinstance(sid, str) or not sid:
            return self._malformed("'start' without a streamSid")
        fmt = start.get("mediaFormat") or {}
        wanted = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        if not isinstance(fmt, dict) or any(fmt.get(k, v) != v for k, v in wanted.items()):
            self.phase = CallPhase.ENDED
            detail = {"detail": f"unsupported mediaFormat {fmt!r}; want {wanted}"}
            return [Notice("media_streams.unsupported", detail), EndCall("unsupported media format", 1003)]
        call_sid = start.get("callSid")
        self.stream_sid, self.call_sid = sid, call_sid if isinstance(call_sid, str) else None
        self.phase = CallPhase.STREAMING
        params = start.get("customParameters")
        return [OpenSession(sid, self.call_sid, dict(params) if isinstance(params, dict) else {})]

    def _on_media(self, msg: dict[str, Any]) -> list[Action]:
        if self.phase is not CallPhase.STREAMING:
            return self._malformed("'media' before 'start'")
        media = msg.get("media")
        if not isinstance(media, dict) or not isinstance(media.get("payload"), str):
            return self._malformed("'media' without media.payload")
        if media.get("track", "inbound") not in ("inbound", "inbound_track"):
            return []  # outbound echo of a both_tracks stream: not the caller
        payload = media["payload"]
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return self._malformed("'media' payload is not base64")
        try:
            self.media_timestamp = int(media.get("timestamp", self.media_timestamp))
        except (TypeError, ValueError, OverflowError):
            return self._malformed("'media' timestamp is not a number")
        if not audio:
            return []
        self.media_in += 1
        return [ToRealtime({"type": "input_audio_buffer.append", "audio": payload})]

    def _on_mark(self, msg: dict[str, Any]) -> list[Action]:
        mark = msg.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            return self._malformed("'mark' without mark.name")
        if name in self._cleared_marks:  # returned by the provider for cleared audio
            self._cleared_marks.discard(name)
            return []
        if name not in self._marks:
            return self._malformed(f"'mark' {name!r} was never sent")
        item_id, end_ms = self._marks.pop(name)
        self.marks_acked += 1
        if self._playing is not None and self._playing.item_id == item_id:
            self._playing.acked_ms = max(self._playing.acked_ms, end_ms)
        return []

    def _on_dtmf(self, msg: dict[str, Any]) -> list[Action]:
        dtmf = msg.get("dtmf")
        digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
        if not isinstance(digit, str) or len(digit) != 1:
            return self._malformed("'dtmf' without a one-character dtmf.digit")
        self.digits.append(digit)
        out: list[Action] = [Notice("media_streams.dtmf", {"digit": digit})]
        if self.dtmf == "text":
            out.append(ToRealtime({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": f"DTMF {digit}"}]}}))
        return out

    def _on_stop(self, msg: dict[str, Any]) -> list[Action]:
        self.phase = CallPhase.ENDED
        return [EndCall("stop")]

    def _malformed(self, detail: str) -> list[Action]:
        self.malformed += 1
        return [Notice("media_streams.malformed", {"detail": detail})]

    # -- realtime -> bridge ---------------------------------------------------------------

    def receive_realtime(self, event: Mapping[str, Any]) -> list[Action]:
        if self.phase is not CallPhase.STREAMING:
            return []
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            return self._on_delta(event)
        if kind in ("response.output_audio.done", "response.done"):
            return self._finish(event.get("item_id") if kind == "response.output_audio.done" else None)
        if kind == "input_audio_buffer.speech_started":
            return self.barge_in()
        return []

    def _on_delta(self, event: Mapping[str, Any]) -> list[Action]:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or item_id in self._interrupted:
            self.dropped_deltas += 1
            return []
        try:
            data = base64.b64decode(event.get("delta") or "", validate=True)
        except (binascii.Error, ValueError):
            self.dropped_deltas += 1
            return []
        out: list[Action] = []
        if self._playing is None or self._playing.item_id != item_id:
            if self._playing is not None:
                out += self._finish(self._playing.item_id)
            self._playing = _Playback(item_id)
        playing = self._playing
        playing.partial += data
        whole = len(playing.partial) - len(playing.partial) % FRAME_BYTES
        out += self._frames(bytes(playing.partial[:whole]))
        del playing.partial[:whole]
        playing.sent_bytes += whole
        if whole:
            out.append(self._mark(playing))
        return out

    def _finish(self, item_id: str | None) -> list[Action]:
        """The item's audio is complete: flush the partial frame (padded) and mark the end."""
        playing = self._playing
        if playing is None or playing.done or (item_id is not None and item_id != playing.item_id):
            return []
        playing.done = True
        if not playing.partial:
            return []
        real = len(playing.partial)
        frame = bytes(playing.partial) + bytes([_SILENCE]) * (FRAME_BYTES - real)
        playing.partial.clear()
        playing.sent_bytes += real
        return [*self._frames(frame), self._mark(playing)]

    def barge_in(self) -> list[Action]:
        """The caller speaks: if audio is still unheard, clear it and truncate the item."""
        playing = self._playing
        if playing is None or not self._marks and not playing.partial:
            return []  # nothing sent, or everything sent has been heard
        self._cleared_marks.update(self._marks)
        self._marks.clear()
        self._interrupted.add(playing.item_id)
        self._playing = None
        self.clears += 1
        out: list[Action] = [ToProvider({"event": "clear", "streamSid": self.stream_sid})]
        if playing.sent_bytes:
            end_ms = min(playing.acked_ms, playing.sent_ms)
            truncate = {"type": "conversation.item.truncate", "item_id": playing.item_id,
                        "content_index": 0, "audio_end_ms": end_ms}
            self.truncations.append(truncate)
            out.append(ToRealtime(truncate))
        return out

    def _frames(self, data: bytes) -> list[Action]:
        out: list[Action] = []
        for i in range(0, len(data), FRAME_BYTES):
            payload = base64.b64encode(data[i : i + FRAME_BYTES]).decode("ascii")
            out.append(ToProvider({"event": "media", "streamSid": self.stream_sid,
                                   "media": {"payload": payload}}))
            self.frames_out += 1
        return out

    def _mark(self, playing: _Playback) -> ToProvider:
        name = f"rtfleet-{next(self._mark_numbers)}"
        self._marks[name] = (playing.item_id, playing.sent_ms)
        self.marks_sent += 1
        return ToProvider({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    @property
    def unacked_marks(self) -> int:
        return len(self._marks)


_PROVIDER_HANDLERS = {
    "connected": MediaStreamsCall._on_connected,
    "start": MediaStreamsCall._on_start,
    "media": MediaStreamsCall._on_media,
    "mark": MediaStreamsCall._on_mark,
    "dtmf": MediaStreamsCall._on_dtmf,
    "stop": MediaStreamsCall._on_stop,
}
