"""Closed connection records are bounded by bytes (issue 20): audio never kept, oldest dropped."""

from __future__ import annotations

import base64
import json

import trio

from standin import EmbeddedServer, ModelConfig
from standin.model.realtime import RealtimeSession
from standin.records import ClosedSession
from standin.testing import open_client, pcm16_silence

ENDED = 2000
BUDGET = 256 * 1024
APPEND = {"type": "input_audio_buffer.append",
          "audio": base64.b64encode(pcm16_silence(20)).decode()}


def _text(text: str) -> dict:
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}


def test_a_closed_session_keeps_types_in_order_text_and_sizes_but_no_audio():
    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0,
                                     config=ModelConfig(pace=0.0))
    session.start()
    audio_item = {"type": "conversation.item.create", "item": {
        "type": "message", "role": "user",
        "content": [{"type": "input_audio", "audio": APPEND["audio"]}]}}
    for event in [_text("hello there"), APPEND, APPEND, APPEND, audio_item, APPEND,
                  {"type": "input_audio_buffer.clear"}]:
        session.receive_text(json.dumps(event), 0.0)
    closed = ClosedSession.of(session)
    assert [e["type"] for e in closed.received] == [
        "conversation.item.create", "input_audio_buffer.append", "conversation.item.create",
        "input_audio_buffer.append", "input_audio_buffer.clear"]
    chars = len(APPEND["audio"])
    run = closed.received[1]
    assert run["count"] == 3 and run["audio"] == f"<{3 * chars} base64 chars>"
    assert closed.received[0]["item"]["content"][0]["text"] == "hello there"
    assert APPEND["audio"] not in json.dumps([closed.received, closed.items])
    assert closed.size() < 4096


async def test_two_thousand_ended_sessions_stay_under_the_byte_budget():
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0),
                                               record_budget_bytes=BUDGET, record_limit=10**6)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)

        async def one(index: int) -> None:
            async with open_client(server.base_url, key=server.api_key) as client:
                assert (await client.recv())["type"] == "session.created"
                await client.send(_text(f"session {index}"))
                for _ in range(5):
                    await client.send(APPEND)
                await client.send({"type": "response.create",
                                   "response": {"output_modalities": ["text"]}})
                while (await client.recv())["type"] != "response.done":
                    pass

        limit = trio.CapacityLimiter(50)

        async def bounded(index: int) -> None:
            async with limit:
                await one(index)

        async with trio.open_nursery() as clients:
            for index in range(ENDED):
                clients.start_soon(bounded, index)
        with trio.fail_after(30):  # every server side has closed its record
            for record in [r for r in server.connections if not r.closed.is_set()]:
                await record.closed.wait()
        assert server.stats.connections_closed == ENDED
        nursery.cancel_scope.cancel()
    stats = server.stats
    kept = [r for r in server.connections if r.closed.is_set()]
    assert stats.record_bytes <= BUDGET
    assert stats.record_bytes == sum(r.retained_bytes for r in kept)
    assert stats.records_dropped == ENDED - len(kept) > 0
    assert stats.record_bytes_dropped > 0
    # the newest are kept, whole: their text is there, their audio is not
    newest = kept[-1]
    assert [e["type"] for e in newest.received] == [
        "conversation.item.create", "input_audio_buffer.append", "response.create"]
    assert newest.received[1]["count"] == 5
    assert newest.items[0]["content"][0]["text"].startswith("session ")
