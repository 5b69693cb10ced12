"""Function tools and the item operations SDKs use, over real loopback sockets: the official
``openai`` SDK runs a tool turn (every event validates against its models), and a trio client
checks ``conversation.item.retrieve``, ``conversation.item.added``/``.done``,
``input_audio_buffer.timeout_triggered`` (on the mock clock) and ``rate_limits.updated``."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
import trio

from standin import EmbeddedServer, ModelConfig
from standin.testing import open_client
from tests.sdk_events import validate_server_event

WEATHER = {
    "type": "function", "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    await nursery.start(server.serve)
    return server


def user_text(text: str) -> dict:
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}


def sdk_tool_turn(server: EmbeddedServer) -> list[dict]:
    """With the official SDK: a turn that calls get_weather, its output, the answer, and a
    retrieve of the call item. Returns every server event, raw."""

    async def recv_until(conn, last: str, events: list[dict]) -> dict:
        while True:
            raw = await conn.recv_bytes()
            events.append(json.loads(raw))
            assert conn.parse_event(raw).type == events[-1]["type"]
            if events[-1]["type"] == last:
                return events[-1]

    async def main() -> list[dict]:
        client = openai.AsyncOpenAI(api_key=server.api_key, base_url=f"{server.base_url}/v1",
                                    websocket_base_url=f"{server.ws_url}/v1")
        events: list[dict] = []
        try:
            async with client.realtime.connect(model="gpt-realtime") as conn:
                await conn.session.update(session={"type": "realtime", "output_modalities": ["text"],
                                                   "tools": [WEATHER], "tool_choice": "auto"})
                await recv_until(conn, "session.updated", events)
                await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "call get_weather city=Paris"}]})
                await conn.response.create()
                await recv_until(conn, "rate_limits.updated", events)
                call = next(e["item"] for e in events if e["type"] == "response.output_item.done")
                await conn.conversation.item.create(item={"type": "function_call_output",
                                                          "call_id": call["call_id"], "output": '{"temp": 21}'})
                await recv_until(conn, "conversation.item.done", events)
                await conn.response.create()
                await recv_until(conn, "rate_limits.updated", events)
                await conn.conversation.item.retrieve(item_id=call["id"])
                await recv_until(conn, "conversation.item.retrieved", events)
                return events
        finally:
            await client.close()

    return asyncio.run(main())


async def test_sdk_tool_turn_validates_and_the_answer_uses_the_output(server):
    events = await trio.to_thread.run_sync(sdk_tool_turn, server)
    for event in events:
        validate_server_event(event)
    assert not [e for e in events if e["type"] == "error"]
    call = next(e["item"] for e in events if e["type"] == "response.output_item.done")
    assert call["type"] == "function_call" and call["status"] == "completed" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == 'get_weather returned {"temp": 21}'
    retrieved = events[-1]["item"]
    assert retrieved["id"] == call["id"] and retrieved["call_id"] == call["call_id"]
    assert retrieved["arguments"] == call["arguments"]
    (record,) = server.connections
    assert [i["type"] for i in record.items] == ["message", "function_call", "function_call_output", "message"]


async def test_item_added_done_retrieve_and_rate_limits(server):
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.recv()  # session.created
        await client.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"],
                                                                 "tools": [WEATHER]}})
        assert (await client.recv())["type"] == "session.updated"
        await client.send(user_text("first"))
        added, done = await client.recv_until("conversation.item.done")
        first = added["item"]["id"]
        assert added["type"] == "conversation.item.added" and added["previous_item_id"] is None
        assert done["item"] == added["item"] and done["item"]["status"] == "completed"
        # an output placed at root: added/done name its previous item (none)
        await client.send({"type": "conversation.item.create", "previous_item_id": "root",
                           "item": {"id": "out_1", "type": "function_call_output", "call_id": "c9", "output": "7"}})
        added, done = await client.recv_until("conversation.item.done")
        assert added["item"]["id"] == done["item"]["id"] == "out_1" and added["previous_item_id"] is None
        await client.send({"type": "conversation.item.create", "previous_item_id": first, "item": {
            "id": "call_item", "type": "function_call", "call_id": "c9", "name": "get_weather", "arguments": "{}"}})
        added, done = await client.recv_until("conversation.item.done")
        assert added["previous_item_id"] == done["previous_item_id"] == first
        for item_id, kind in (("out_1", "function_call_output"), ("call_item", "function_call"), (first, "message")):
            await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
            (retrieved,) = await client.recv_until("conversation.item.retrieved")
            assert retrieved["item"]["id"] == item_id and retrieved["item"]["type"] == kind
            validate_server_event(retrieved)
        await client.send({"type": "conversation.item.retrieve", "item_id": "missing", "event_id": "e1"})
        error = await client.recv()
        assert error["type"] == "error" and error["error"]["code"] == "item_not_found"
        assert error["error"]["event_id"] == "e1"
        # a tool-call response ends with response.done then rate_limits.updated
        await client.send(user_text("get_weather city=Rome"))
        await client.recv_until("conversation.item.done")
        await client.send({"type": "response.create"})
        events = await client.recv_until("rate_limits.updated")
        assert [e["type"] for e in events][-2:] == ["response.done", "rate_limits.updated"]
        limits = {entry["name"]: entry for entry in events[-1]["rate_limits"]}
        usage = events[-2]["response"]["usage"]
        assert limits["tokens"]["remaining"] == limits["tokens"]["limit"] - usage["total_tokens"]
        for event in events:
            validate_server_event(event)
        # bad input on the new paths: an error event, and the session lives on
        await client.send({"type": "response.create", "response": {"tool_choice": {"type": "function",
                                                                                   "name": "nope"}}})
        error = await client.recv()
        assert error["error"]["param"] == "response.tool_choice.name"
        await client.send({"type": "conversation.item.retrieve", "item_id": first})
        assert (await client.recv())["type"] == "conversation.item.retrieved"


async def test_idle_timeout_triggered_over_websocket(server, autojump_clock):
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.recv()
        await client.send({"type": "session.update", "session": {
            "type": "realtime", "output_modalities": ["text"],
            "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 3000}}}}})
        await client.recv_until("session.updated")
        await client.send(user_text("hello"))
        await client.send({"type": "response.create"})
        await client.recv_until("rate_limits.updated")
        answered = trio.current_time()
        trigger = (await client.recv_until("input_audio_buffer.timeout_triggered"))[-1]
        assert trio.current_time() - answered == pytest.approx(3.0, abs=0.01)
        validate_server_event(trigger)
        events = await client.recv_until("rate_limits.updated")
        kinds = [e["type"] for e in events]
        assert kinds[:3] == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
        assert events[0]["item_id"] == trigger["item_id"]
        assert events[1]["item"]["role"] == "user" and events[1]["item"]["content"][0]["type"] == "input_audio"
        assert "response.done" in kinds
        # speech-free silence again: it fires again, one timeout after the answer
        again = trio.current_time()
        await client.recv_until("input_audio_buffer.timeout_triggered")
        assert trio.current_time() - again == pytest.approx(3.0, abs=0.01)
