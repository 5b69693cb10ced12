"""The WebRTC actor against a tiny HTTP endpoint (hypercorn, trio) that answers with
``standin.sessions.rtc_answer`` and plays a scripted model over the data channel.

Everything runs on 127.0.0.1; waits are on events and channels, ``fail_after`` is a net.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from typing import Any

import attrs
import numpy as np
import pytest
import trio

pytest.importorskip("aiortc", reason="needs the webrtc extra: pip install -e .[webrtc]")
pytest.importorskip("trio_asyncio", reason="needs the webrtc extra")

from hypercorn.config import Config
from hypercorn.trio import serve

from actors.credentials import Secret
from actors.events import ConnectionEvent, EventKind, Transport
from actors.exits import ExitReason
from actors.link import SessionLink
from actors.proto.client import ClientCore
from actors.rtc.loop import open_rtc_loop
from actors.rtc.media import PCM_RATE, tone
from actors.webrtc import ConnectParams, RtcOptions, realtime_calls_url, run_webrtc
from standin.sessions.rtc_answer import RtcCall, answer_offer

KEY = "ek_test_0123456789abcdef"


@pytest.fixture
async def rtc():
    async with open_rtc_loop() as loop:
        yield loop


# -- the endpoint --------------------------------------------------------------------------


@attrs.define(eq=False)
class ScriptedModel:
    """Answers a text turn; records what the client sent (events and audio)."""

    gate: trio.Event = attrs.field(factory=trio.Event)
    received: list[dict[str, Any]] = attrs.field(factory=list)
    audio: bytearray = attrs.field(factory=bytearray)
    heard_audio: trio.Event = attrs.field(factory=trio.Event)
    calls: list[RtcCall] = attrs.field(factory=list)
    audio_needed: int = PCM_RATE * 2 // 2  # 500 ms
    loud_chunks: int = 0
    loud_at_commit: int | None = None
    committed: trio.Event = attrs.field(factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self.gate.set()

    async def on_open(self, call: RtcCall) -> None:
        self.calls.append(call)
        await self.gate.wait()
        await call.send_event({
            "type": "session.created", "event_id": "event_1",
            "session": {"id": "sess_1", "object": "realtime.session",
                        "expires_at": int(time.time()) + 3600},
        })

    async def on_message(self, call: RtcCall, text: str) -> None:
        event = json.loads(text)
        self.received.append(event)
        if event["type"] == "input_audio_buffer.commit":
            self.loud_at_commit = self.loud_chunks
            self.committed.set()
        if event["type"] == "conversation.item.create":
            item = {**event["item"], "status": "completed"}
            await call.send_events([
                {"type": "conversation.item.added", "event_id": "event_2", "item": item,
                 "previous_item_id": None},
                {"type": "conversation.item.done", "event_id": "event_3", "item": item,
                 "previous_item_id": None},
            ])
        elif event["type"] == "response.create":
            part = {"response_id": "resp_1", "item_id": "item_a", "output_index": 0,
                    "content_index": 0}
            await call.send_event({"type": "response.created", "event_id": "event_4",
                                   "response": {"id": "resp_1", "status": "in_progress",
                                                "output": []}})
            call.play(tone(660, 400))
            await call.send_events([
                {"type": "response.output_text.delta", "event_id": "event_5", **part,
                 "delta": "Hello"},
                {"type": "response.output_text.done", "event_id": "event_6", **part,
                 "text": "Hello"},
            ])
            await call.wait_played()
            await call.send_event({"type": "response.done", "event_id": "event_7",
                                   "response": {"id": "resp_1", "status": "completed",
                                                "output": []}})

    def on_audio(self, call: RtcCall, pcm: bytes) -> None:
        self.audio += pcm
        x = np.frombuffer(pcm, "<i2").astype(np.float64)
        if np.sqrt((x**2).mean()) > 2000:
            self.loud_chunks += len(pcm)  # bytes of loud audio
            if self.loud_chunks >= self.audio_needed:
                self.heard_audio.set()


@attrs.define(eq=False)
class CallsEndpoint:
    """A raw ASGI app for ``POST /v1/realtime/calls``."""

    rtc: Any
    nursery: trio.Nursery
    model: ScriptedModel
    status: int | None = None  # force an HTTP error status
    requests: int = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests += 1
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if scope["path"] != "/v1/realtime/calls" or scope["method"] != "POST":
            return await _respond(send, 404, b"not found")
        auth = headers.get("authorization", "")
        if self.status is not None or auth != f"Bearer {KEY}":
            status = self.status or 401
            # echo the header back, as a careless server might: the actor must redact it
            error = {"error": {"message": f"refused {auth}", "code": "invalid_api_key"}}
            return await _respond(send, status, json.dumps(error).encode(), "application/json")
        if headers.get("content-type") != "application/sdp":
            return await _respond(send, 415, b"want application/sdp")
        model = self.model
        answer, call = await answer_offer(
            body.decode(), rtc_loop=self.rtc, nursery=self.nursery, on_open=model.on_open,
            on_message=model.on_message, on_audio=model.on_audio,
        )
        await _respond(send, 201, answer.encode(), "application/sdp",
                       [(b"location", f"/v1/realtime/calls/{call.call_id}".encode())])


async def _respond(send: Any, status: int, body: bytes, content_type: str = "text/plain",
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type.encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@attrs.define(eq=False)
class Harness:
    endpoint: CallsEndpoint
    base_url: str
    events: trio.MemoryReceiveChannel[ConnectionEvent]
    link: SessionLink

    @property
    def model(self) -> ScriptedModel:
        return self.endpoint.model

    def params(self, key: str = KEY, **kw: Any) -> ConnectParams:
        return ConnectParams(url=self.base_url, credential=Secret(key, kind="client_secret"),
                             connect_timeout=10, ready_timeout=10, close_timeout=2, **kw)

    async def next_event(self, kind: EventKind, type: str | None = None) -> ConnectionEvent:
        async for event in self.events:
            if event.kind == kind and (type is None or event.type == type):
                return event
        raise AssertionError("event stream ended")


@pytest.fixture
async def harness(rtc, nursery):
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    endpoint = CallsEndpoint(rtc, nursery, ScriptedModel())
    binds = await nursery.start(serve, endpoint, config)
    send, receive = trio.open_memory_channel(10_000)
    link = SessionLink("s1", Transport.WEBRTC, ClientCore(), send.send_nowait)
    yield Harness(endpoint, binds[0], receive, link)


def test_calls_url():
    assert realtime_calls_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1/realtime/calls"
    assert realtime_calls_url("https://api.openai.com/v1") == "https://api.openai.com/v1/realtime/calls"
    assert realtime_calls_url("wss://h/v1/realtime") == "https://h/v1/realtime/calls"
    assert realtime_calls_url("http://h/v1/realtime/calls") == "http://h/v1/realtime/calls"
    with pytest.raises(ValueError):
        realtime_calls_url("ftp://h")


# -- the actor -----------------------------------------------------------------------------


def user_text(text: str) -> dict[str, Any]:
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user",
                     "content": [{"type": "input_text", "text": text}]}}


async def test_text_turn_audio_both_ways_and_server_hangup(harness, rtc, nursery):
    h = harness
    options = RtcOptions(loop=rtc)
    h.model.gate = trio.Event()  # hold session.created back
    exits: list[Any] = []

    async def actor(task_status=trio.TASK_STATUS_IGNORED) -> None:
        exits.append(await run_webrtc(h.link, h.params(), options=options, task_status=task_status))

    with trio.fail_after(20):
        async with trio.open_nursery() as inner:
            started = trio.Event()

            async def start_actor() -> None:
                await inner.start(actor)
                started.set()

            inner.start_soon(start_actor)
            connected = await h.next_event(EventKind.INFO)
            assert connected.payload["event"] == "webrtc.connected"
            assert connected.payload["call_id"] == h.model.calls[0].call_id
            assert not started.is_set()  # data channel open, but no session.created yet
            h.model.gate.set()
            await started.wait()
            assert h.link.core.ready

            await h.link.send(user_text("Hi"))
            await h.link.send({"type": "response.create"})
            pcm = tone(440, 600)
            for i in range(0, len(pcm), 960):  # 20 ms appends go to the track, not the channel
                await h.link.send({"type": "input_audio_buffer.append",
                                   "audio": base64.b64encode(pcm[i:i + 960]).decode()})
            await h.link.send({"type": "input_audio_buffer.commit"})

            audio = bytearray()
            seen: list[str] = []
            sent: list[str] = []
            async for event in h.events:
                if event.kind == EventKind.AUDIO:
                    audio += event.payload
                elif event.kind == EventKind.SERVER:
                    seen.append(event.type)
                elif event.kind == EventKind.SENT:
                    sent.append(event.type)
                if "response.done" in seen and "input_audio_buffer.commit" in sent:
                    break
            await h.model.heard_audio.wait()
            await h.model.committed.wait()
            await h.model.calls[0].close()  # the server hangs up
    assert seen == ["session.created", "conversation.item.added", "conversation.item.done",
                    "response.created", "response.output_text.delta",
                    "response.output_text.done", "response.done"]
    assert "input_audio_buffer.append" not in [e["type"] for e in h.model.received]
    # the barrier: the commit was written only after the track took the 600 ms of tone, so
    # the server had heard most of it (the last frames may still be in the decoder)
    assert h.model.loud_at_commit >= PCM_RATE * 2 * 300 // 1000
    assert "input_audio_buffer.append" not in sent
    assert sent[:2] == ["conversation.item.create", "response.create"]
    chunks = np.frombuffer(bytes(audio), "<i2").astype(np.float64)
    assert len(audio) > 0 and np.abs(chunks).max() > 3000  # the 660 Hz reply, decoded
    assert exits[0].reason is ExitReason.DROPPED
    assert "closed" in exits[0].detail
    assert not h.link.core.connected


@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, ExitReason.AUTH), (403, ExitReason.AUTH), (429, ExitReason.DROPPED),
     (500, ExitReason.DROPPED), (503, ExitReason.DROPPED), (400, ExitReason.FATAL),
     (404, ExitReason.FATAL)],
)
async def test_http_status_is_mapped_and_secret_never_shown(harness, rtc, status, reason):
    harness.endpoint.status = status
    with trio.fail_after(10):
        exit = await run_webrtc(harness.link, harness.params(), options=RtcOptions(loop=rtc))
    assert exit.reason is reason
    assert f"HTTP {status}" in exit.detail
    assert KEY not in exit.detail and "[redacted]" in exit.detail
    assert harness.model.calls == []


async def test_wrong_key_is_auth(harness, rtc):
    with trio.fail_after(10):
        exit = await run_webrtc(harness.link, harness.params("ek_wrong_987654321"),
                                options=RtcOptions(loop=rtc))
    assert exit.reason is ExitReason.AUTH and "ek_wrong" not in exit.detail


async def test_connection_refused_is_dropped(rtc):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    send, _ = trio.open_memory_channel(100)
    link = SessionLink("s2", Transport.WEBRTC, ClientCore(), send.send_nowait)
    params = ConnectParams(url=f"http://127.0.0.1:{port}", credential=Secret(KEY), connect_timeout=5)
    with trio.fail_after(10):
        exit = await run_webrtc(link, params, options=RtcOptions(loop=rtc))
    assert exit.reason is ExitReason.DROPPED and "ConnectError" in exit.detail
    assert KEY not in exit.detail


async def test_cancelling_the_actor_closes_the_call(harness, rtc):
    """The supervisor stops a session by cancelling it: the peer closes, bounded."""
    with trio.fail_after(15):
        async with trio.open_nursery() as inner:
            await inner.start(lambda task_status: run_webrtc(
                harness.link, harness.params(), options=RtcOptions(loop=rtc),
                task_status=task_status))
            inner.cancel_scope.cancel()
        await harness.model.calls[0].closed.wait()
    assert not harness.link.core.connected
    assert rtc.peers == 0


async def test_private_loop_when_none_is_open(harness):
    """Without a loop in options or context the actor opens its own for the connection."""
    with trio.fail_after(15):
        async with trio.open_nursery() as inner:
            await inner.start(lambda task_status: run_webrtc(
                harness.link, harness.params(), task_status=task_status))
            assert harness.link.core.ready
            inner.cancel_scope.cancel()
