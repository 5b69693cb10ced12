"""The OpenAI Agents SDK (``openai-agents``) as a client of the embedded server, over loopback:
a ``RealtimeRunner`` with a ``RealtimeAgent`` that has a function tool completes a turn in which
the model calls the tool and speaks its result, then an audio turn (after whose transcript the
SDK retrieves the item); every server event it receives validates against
``openai.types.realtime``, and it reports no error.

The SDK runs on asyncio: it runs in a thread of its own (``asyncio.run``), the server on trio.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest
import trio

from standin import EmbeddedServer, ModelConfig
from standin.testing import pcm16_silence, pcm16_tone
from tests.sdk_events import validate_server_event

if os.environ.get("RTFLEET_REQUIRE_AGENTS") == "1":  # CI: the test extra installs it
    import agents  # noqa: F401
agents = pytest.importorskip("agents", reason="openai-agents is not installed (pip install -e '.[test]')")
realtime = pytest.importorskip("agents.realtime")

#: the Agents SDK's default realtime model: its session.update names it, and a session's model
#: cannot change, so the socket is opened with the same one
MODEL = "gpt-realtime-2.1"
TURN_TIMEOUT = 20.0  # a guard against a hang, not a wait: each step returns on an event


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    await nursery.start(server.serve)
    return server


def agents_session(server: EmbeddedServer) -> dict:
    """Run the two turns with the Agents SDK; returns what it saw."""
    tool_calls: list[dict] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        tool_calls.append({"city": city})
        return f"sunny in {city}"

    async def main() -> dict:
        agent = realtime.RealtimeAgent(name="weather", instructions="Answer with the weather.",
                                       tools=[get_weather])
        runner = realtime.RealtimeRunner(agent)
        seen: dict = {"raw": [], "session_events": [], "tool_end": [], "errors": []}
        session = await runner.run(model_config={
            "url": f"{server.ws_url}/v1/realtime?model={MODEL}", "api_key": server.api_key})

        async def until(predicate) -> None:
            async for event in session:
                seen["session_events"].append(event.type)
                if event.type == "raw_model_event" and event.data.type == "raw_server_event":
                    seen["raw"].append(event.data.data)
                elif event.type == "error":
                    seen["errors"].append(repr(event.error))
                elif event.type == "tool_end":
                    seen["tool_end"].append((event.tool.name, event.output))
                if predicate(event):
                    return

        def raw_type(kind: str):
            return lambda e: e.type == "raw_model_event" and e.data.type == "raw_server_event" and \
                e.data.data.get("type") == kind

        async with session:
            await session.send_message("call get_weather city=Paris")
            # the call's response ends, the tool runs, its output is answered: two response.done
            done = 0

            def second_done(event) -> bool:
                nonlocal done
                done += raw_type("response.done")(event)
                return done == 2

            await asyncio.wait_for(until(second_done), TURN_TIMEOUT)
            seen["tool_turn_events"] = len(seen["raw"])
            pcm = pcm16_silence(200) + pcm16_tone(600) + pcm16_silence(800)
            await session.send_audio(pcm)
            await asyncio.wait_for(until(raw_type("conversation.item.retrieved")), TURN_TIMEOUT)
            if not any(e.get("type") == "response.done" for e in seen["raw"][seen["tool_turn_events"]:]):
                await asyncio.wait_for(until(raw_type("response.done")), TURN_TIMEOUT)
        seen["tool_calls"] = tool_calls
        return seen

    return asyncio.run(main())


async def test_agents_sdk_calls_the_tool_and_speaks_its_result(server):
    seen = await trio.to_thread.run_sync(agents_session, server)
    raw = seen["raw"]
    assert seen["errors"] == [] and "error" not in seen["session_events"]
    assert not [e for e in raw if e["type"] == "error"]
    for event in raw:
        validate_server_event(event)
    # the tool ran once, with the arguments the user's words gave, and its result was spoken
    assert seen["tool_calls"] == [{"city": "Paris"}]
    assert seen["tool_end"] == [("get_weather", "sunny in Paris")]
    call = next(e["item"] for e in raw if e["type"] == "response.output_item.done")
    assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"city": "Paris"}
    spoken = [e["transcript"] for e in raw if e["type"] == "response.output_audio_transcript.done"]
    assert spoken[0] == "get_weather returned sunny in Paris"
    tool_turn = raw[:seen["tool_turn_events"]]
    assert any(e["type"] == "response.output_audio.delta" and base64.b64decode(e["delta"]) for e in tool_turn)
    # the audio turn: the SDK retrieved the item after its transcript, and got it
    retrieved = next(e for e in raw if e["type"] == "conversation.item.retrieved")
    (record,) = server.connections
    kinds = [e["type"] for e in record.received]
    assert "conversation.item.retrieve" in kinds
    assert retrieved["item"]["id"] == next(e for e in record.received
                                           if e["type"] == "conversation.item.retrieve")["item_id"]
    assert record.model == MODEL
    outputs = [i for i in record.items if i["type"] == "function_call_output"]
    assert len(outputs) == 1 and outputs[0]["output"] == "sunny in Paris" and outputs[0]["call_id"] == call["call_id"]
