"""The Media Streams bridge over loopback: a scripted phone provider, the bridge, a fleet on the
embedded server (µ-law both ways, no transcoding).

The scripted provider streams 20 ms µ-law frames continuously (silence unless a tone is
scripted), paced with ``trio.sleep_until``, and "plays" the frames it receives at 20 ms a frame,
echoing each ``mark`` when playback reaches it and every pending mark at once on ``clear``, as the
provider does. Tests wait on conditions (events), with ``trio.fail_after`` as the safety net.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from actors.events import ConnectionState, EventKind
from actors.proto.audio import ulaw_encode
from orchestrator.fleet import open_fleet
from orchestrator.media_streams.bridge import MediaStreamsBridge
from orchestrator.media_streams.call import FRAME_BYTES
from standin.testing import pcm16_tone

SILENCE = b"\xff" * FRAME_BYTES
STREAM = "MZ00000000000000000000000000000001"
START = {"event": "start", "sequenceNumber": "1", "streamSid": STREAM,
         "start": {"streamSid": STREAM, "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],
                   "customParameters": {},
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}


@asynccontextmanager
async def open_phone(url: str) -> AsyncIterator[WebSocketConnection]:
    """A client socket whose TCP stream is ours to close (trio-websocket leaves a client's
    stream open when the server closes first)."""
    parts = urlsplit(url)
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(nursery, stream, parts.hostname, "/")
            try:
                yield ws
            finally:
                with trio.move_on_after(2) as cleanup:
                    cleanup.shield = True
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


def tone_frames(ms: int) -> list[bytes]:
    ulaw = ulaw_encode(pcm16_tone(ms, rate=8000))
    return [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]


class ScriptedPhone:
    """The provider's side of one Media Streams connection."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.script: deque[bytes] = deque()  # frames to send before going back to silence
        self.chunk = 0
        self.received: list[dict[str, Any]] = []
        self.frames_in: list[bytes] = []  # every media payload received, in order
        self.played = 0  # frames played
        self.acked: list[str] = []
        self.clears = 0
        self.played_at_clear: list[int] = []
        self._playout: deque[tuple[str, Any]] = deque()
        self._generation = 0
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    async def send(self, message: dict[str, Any] | str) -> None:
        try:
            await self.ws.send_message(message if isinstance(message, str) else json.dumps(message))
        except ConnectionClosed:
            await trio.sleep_forever()  # the call is over: this task waits to be cancelled

    def say(self, frames: list[bytes]) -> None:
        self.script.extend(frames)

    @property
    def idle(self) -> bool:
        return not self._playout

    async def stream(self) -> None:
        """Caller audio: one frame every 20 ms, for ever (silence when nothing is scripted)."""
        t0 = trio.current_time()
        while True:
            frame = self.script.popleft() if self.script else SILENCE
            self.chunk += 1
            await self.send({"event": "media", "sequenceNumber": str(self.chunk + 1), "streamSid": STREAM,
                             "media": {"track": "inbound", "chunk": str(self.chunk),
                                       "timestamp": str(self.chunk * 20),
                                       "payload": base64.b64encode(frame).decode()}})
            await trio.sleep_until(t0 + self.chunk * 0.02)

    async def listen(self) -> None:
        try:
            while True:
                msg = json.loads(await self.ws.get_message())
                self.received.append(msg)
                assert msg["streamSid"] == STREAM
                if msg["event"] == "media":
                    frame = base64.b64decode(msg["media"]["payload"])
                    self.frames_in.append(frame)
                    self._playout.append(("frame", frame))
                elif msg["event"] == "mark":
                    self._playout.append(("mark", msg["mark"]["name"]))
                elif msg["event"] == "clear":
                    self.clears += 1
                    self.played_at_clear.append(self.played)
                    self._generation += 1
                    marks = [v for k, v in self._playout if k == "mark"]
                    self._playout.clear()
                    for name in marks:  # the provider returns the marks of cleared audio
                        await self.send({"event": "mark", "streamSid": STREAM, "mark": {"name": name}})
                self._notify()
        except ConnectionClosed:
            self._notify()

    async def play(self) -> None:
        """The phone's playout: 20 ms a frame; marks echoed when reached."""
        while True:
            await self.wait_for(lambda: bool(self._playout))
            kind, value = self._playout.popleft()
            if kind == "mark":
                self.acked.append(value)
                await self.send({"event": "mark", "sequenceNumber": "0", "streamSid": STREAM,
                                 "mark": {"name": value}})
            else:
                generation = self._generation
                await trio.sleep(0.02)  # playing the frame (this is the phone's clock)
                if generation == self._generation:
                    self.played += 1
            self._notify()


async def _open_call(bridge: MediaStreamsBridge, fleet: Any, nursery: trio.Nursery, ws: Any):
    phone = ScriptedPhone(ws)
    started = bridge.call_started
    await phone.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    await phone.send(START)
    await started.wait()
    sid = bridge.sessions[STREAM]
    await fleet.wait_connected(sid)
    nursery.start_soon(phone.listen)
    nursery.start_soon(phone.play)
    return phone, sid


async def _wait_event(sub: Any, predicate: Callable[[Any], bool], seen: list | None = None) -> Any:
    async for event in sub:
        if seen is not None:
            seen.append(event)
        if predicate(event):
            return event
    raise AssertionError("subscription ended")


def _server(kind: str) -> Callable[[Any], bool]:
    return lambda e: e.kind is EventKind.SERVER and e.type == kind


async def test_a_call_turn_barge_in_and_stop():
    with trio.fail_after(30):
        async with open_fleet(seed=5, config={"instructions": "Be brief."}) as fleet:
            async with trio.open_nursery() as nursery:
                bridge = MediaStreamsBridge(fleet)
                url = await nursery.start(bridge.serve)
                assert url.startswith("ws://127.0.0.1:")
                async with open_phone(url) as ws:
                    phone, sid = await _open_call(bridge, fleet, nursery, ws)
                    link = fleet.links[sid]
                    assert dict(link.core.config.input_format) == {"type": "audio/pcmu"}
                    assert dict(link.core.config.output_format) == {"type": "audio/pcmu"}
                    events = fleet.subscribe(sessions=[sid], buffer=100_000)
                    # Malformed frames and a digit, before the audio: reported, the call lives on.
                    await phone.send("this is not json")
                    await phone.send({"event": "no-such-event", "streamSid": STREAM})
                    await phone.send({"event": "dtmf", "streamSid": STREAM, "sequenceNumber": "3",
                                      "dtmf": {"track": "inbound_track", "digit": "5"}})
                    infos: list[Any] = []
                    await _wait_event(events, lambda e: e.kind is EventKind.INFO
                                      and e.payload.get("event") == "media_streams.dtmf", infos)
                    malformed = [e for e in infos if e.kind is EventKind.INFO
                                 and e.payload.get("event") == "media_streams.malformed"]
                    assert len(malformed) == 2 and bridge.malformed == 2
                    assert bridge.calls[STREAM].digits == ["5"]

                    # Turn 1: a tone, then silence; the answer comes back as µ-law media.
                    nursery.start_soon(phone.stream)
                    phone.say(tone_frames(600))
                    seen: list[Any] = []
                    await _wait_event(events, _server("response.done"), seen)
                    deltas = b"".join(base64.b64decode(e.payload["delta"]) for e in seen
                                      if e.kind is EventKind.SERVER and e.type == "response.output_audio.delta")
                    assert deltas and len(deltas) % FRAME_BYTES == 0
                    await phone.wait_for(lambda: len(phone.frames_in) * FRAME_BYTES >= len(deltas) and phone.idle)
                    assert b"".join(phone.frames_in) == deltas  # pass-through, re-chunked
                    assert all(len(f) == FRAME_BYTES for f in phone.frames_in)
                    marks = [m for m in phone.received if m["event"] == "mark"]
                    assert marks and phone.acked == [m["mark"]["name"] for m in marks]
                    call = bridge.calls[STREAM]
                    while call.unacked_marks:  # the last echo may still be on its way
                        await bridge.frame_handled.wait()
                    assert call.clears == 0
                    played_turn1 = phone.played

                    # Turn 2: barge in while the answer is playing.
                    phone.say(tone_frames(600))
                    await _wait_event(events, _server("response.output_audio.delta"))
                    acked_before = len(phone.acked)
                    await phone.wait_for(lambda: len(phone.acked) > acked_before)  # 100 ms heard
                    phone.say(tone_frames(400))
                    truncated = await _wait_event(events, _server("conversation.item.truncated"))
                    await phone.wait_for(lambda: phone.clears == 1)
                    (sent,) = call.truncations
                    played_ms = (phone.played_at_clear[0] - played_turn1) * 20
                    assert 100 <= sent["audio_end_ms"] <= played_ms
                    assert truncated.payload["audio_end_ms"] == sent["audio_end_ms"]
                    assert truncated.payload["item_id"] == sent["item_id"]
                    assert not [e for e in fleet.links[sid].core.pending
                                if e["type"] == "conversation.item.truncate"]

                    # stop: the fleet session ends, the bridge closes the socket.
                    ended = bridge.call_ended
                    await phone.send({"event": "stop", "streamSid": STREAM, "sequenceNumber": "99",
                                      "stop": {"accountSid": "AC1", "callSid": "CA1"}})
                    await ended.wait()
                    assert fleet.status(sid).state is ConnectionState.CLOSED
                    assert bridge.ended == [STREAM]
                    assert bridge.malformed == 2
                nursery.cancel_scope.cancel()


async def test_a_realtime_reconnect_keeps_the_phone_stream():
    with trio.fail_after(30):
        async with open_fleet(seed=6) as fleet:
            async with trio.open_nursery() as nursery:
                bridge = MediaStreamsBridge(fleet)
                url = await nursery.start(bridge.serve)
                async with open_phone(url) as ws:
                    phone, sid = await _open_call(bridge, fleet, nursery, ws)
                    states = fleet.subscribe(sessions=[sid], kinds=["state"])
                    events = fleet.subscribe(sessions=[sid], kinds=["server"], buffer=100_000)
                    nursery.start_soon(phone.stream)
                    phone.say(tone_frames(600))  # a first turn on the first realtime connection
                    await _wait_event(events, _server("response.done"))
                    await phone.wait_for(lambda: bool(phone.frames_in) and phone.idle)
                    answered = len(phone.frames_in)
                    fleet.links[sid].abort_connection()
                    await _wait_event(states, lambda e: e.payload["to"] == "reconnecting")
                    await _wait_event(states, lambda e: e.payload["to"] == "connected")
                    assert fleet.status(sid).reconnects == 1
                    # The phone socket is still up and the next turn is answered on it.
                    phone.say(tone_frames(600))
                    await _wait_event(events, _server("response.done"))
                    await phone.wait_for(lambda: len(phone.frames_in) > answered and phone.idle)
                    assert not ws.closed
                    assert dict(fleet.links[sid].core.config.input_format) == {"type": "audio/pcmu"}
                # The socket closed without a stop: the session is removed too.
                with trio.fail_after(10):
                    while STREAM not in bridge.ended:
                        await bridge.call_ended.wait()
                assert fleet.status(sid).state is ConnectionState.CLOSED
                nursery.cancel_scope.cancel()


async def test_an_unsupported_media_format_is_refused():
    with trio.fail_after(15):
        async with open_fleet() as fleet:
            async with trio.open_nursery() as nursery:
                bridge = MediaStreamsBridge(fleet)
                url = await nursery.start(bridge.serve)
                async with open_phone(url) as ws:
                    start = json.loads(json.dumps(START))
                    start["start"]["mediaFormat"]["encoding"] = "audio/l16"
                    await ws.send_message(json.dumps(start))
                    try:
                        while True:
                            await ws.get_message()
                    except ConnectionClosed as exc:
                        assert exc.reason.code == 1003
                assert not bridge.sessions and not fleet.session_ids()
                nursery.cancel_scope.cancel()


async def test_a_call_beyond_the_fleet_capacity_is_refused_and_the_bridge_lives_on():
    with trio.fail_after(15):
        async with open_fleet(max_sessions=0) as fleet:
            async with trio.open_nursery() as nursery:
                bridge = MediaStreamsBridge(fleet)
                url = await nursery.start(bridge.serve)
                for _ in range(2):
                    async with open_phone(url) as ws:
                        await ws.send_message(json.dumps(START))
                        try:
                            while True:
                                await ws.get_message()
                        except ConnectionClosed as exc:
                            assert exc.reason.code == 1013
                assert not bridge.sessions
                nursery.cancel_scope.cancel()
