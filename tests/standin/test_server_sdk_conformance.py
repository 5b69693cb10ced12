"""Conformance with the official ``openai`` SDK: it completes turns against the embedded server,
and every server event validates against ``openai.types.realtime.RealtimeServerEvent``."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import typing
from typing import Annotated

import openai
import pytest
import trio
from openai.types.realtime import RealtimeServerEvent
from pydantic import Field, TypeAdapter

from standin import EmbeddedServer, ModelConfig, RealtimeSession
from standin.model.events import IdFactory
from standin.testing import pcm16_silence, pcm16_tone, split_chunks


def _server_event_adapter() -> TypeAdapter:
    args = typing.get_args(RealtimeServerEvent)
    union = args[0] if args and typing.get_origin(args[0]) is typing.Union else RealtimeServerEvent
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


SERVER_EVENT = _server_event_adapter()


def validate(raw: dict) -> None:
    SERVER_EVENT.validate_python(raw)


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    await nursery.start(server.serve)
    return server


def sdk_client(server: EmbeddedServer, key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=key or server.api_key, base_url=f"{server.base_url}/v1", websocket_base_url=f"{server.ws_url}/v1"
    )


async def collect(conn, last: str = "rate_limits.updated") -> list[dict]:
    """Raw server events until ``last``; each is also parsed by the SDK."""
    events = []
    while True:
        raw = await conn.recv_bytes()
        assert conn.parse_event(raw).type == json.loads(raw)["type"]
        events.append(json.loads(raw))
        if events[-1]["type"] == last:
            return events


def sdk_text_turn(server: EmbeddedServer) -> list[dict]:
    async def main() -> list[dict]:
        client = sdk_client(server)
        try:
            async with client.realtime.connect(model="gpt-realtime") as conn:
                await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
                await conn.conversation.item.create(item={
                    "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello sdk"}]})
                await conn.response.create()
                events = await collect(conn)
                # The SDK's own iteration works too.
                await conn.conversation.item.retrieve(item_id=events[-4]["item"]["id"])
                async for event in conn:
                    assert event.type == "conversation.item.retrieved"
                    break
                return events
        finally:
            await client.close()

    return asyncio.run(main())


def sdk_audio_turn(server: EmbeddedServer) -> list[dict]:
    pcm = pcm16_silence(300) + pcm16_tone(600) + pcm16_silence(700)

    async def main() -> list[dict]:
        client = sdk_client(server)
        try:
            async with client.realtime.connect(model="gpt-realtime") as conn:
                await conn.session.update(session={"type": "realtime", "audio": {"input": {
                    "transcription": {"model": "whisper-1"}}}})
                for chunk in split_chunks(pcm, 20):
                    await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
                return await collect(conn)
        finally:
            await client.close()

    return asyncio.run(main())


async def test_sdk_completes_a_text_turn(server):
    events = await trio.to_thread.run_sync(sdk_text_turn, server)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["session.created", "session.updated"]
    assert kinds[-2:] == ["response.done", "rate_limits.updated"]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "You said: hello sdk"
    for event in events:
        validate(event)
    assert server.connections[0].auth_kind == "api_key"


async def test_sdk_audio_turn_events_validate(server):
    events = await trio.to_thread.run_sync(sdk_audio_turn, server)
    kinds = [e["type"] for e in events]
    assert "response.output_audio.delta" in kinds and "response.output_audio_transcript.delta" in kinds
    assert "conversation.item.input_audio_transcription.completed" in kinds
    for event in events:
        validate(event)


def sdk_client_secret_flow(server: EmbeddedServer) -> tuple[str, list[dict]]:
    async def main() -> tuple[str, list[dict]]:
        client = sdk_client(server)
        try:
            secret = await client.realtime.client_secrets.create(
                expires_after={"anchor": "created_at", "seconds": 60},
                session={"type": "realtime", "model": "gpt-realtime-mini", "output_modalities": ["text"]},
            )
        finally:
            await client.close()
        ephemeral = sdk_client(server, key=secret.value)
        try:
            async with ephemeral.realtime.connect(model="gpt-realtime-mini") as conn:
                await conn.conversation.item.create(item={
                    "type": "message", "role": "user", "content": [{"type": "input_text", "text": "via secret"}]})
                await conn.response.create()
                return secret.session.id, await collect(conn)
        finally:
            await ephemeral.close()

    return asyncio.run(main())


async def test_sdk_client_secret_then_connect(server):
    session_id, events = await trio.to_thread.run_sync(sdk_client_secret_flow, server)
    assert session_id.startswith("sess_")
    assert events[0]["session"]["model"] == "gpt-realtime-mini"
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "You said: via secret"
    assert server.connections[0].auth_kind == "client_secret"


def test_every_event_the_model_emits_validates():
    """Drive the sans-I/O model through every path and validate each event it produces."""
    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, ids=IdFactory(random.Random(3)),
                                     config=ModelConfig(pace=1.0), transport="sideband")
    out = session.start()
    send = lambda event, now=0.0: out.extend(session.receive_event(event, now))  # noqa: E731
    send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "whisper-1"}}}}})
    for chunk in split_chunks(pcm16_silence(300) + pcm16_tone(600) + pcm16_silence(700)):
        send({"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()})
    out += session.handle_timer(0.1)
    send({"type": "output_audio_buffer.clear"}, 0.1)
    for chunk in split_chunks(pcm16_tone(100)):  # barge-in
        send({"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()}, 0.15)
    assistant = [i for i in session.items if i["role"] == "assistant"][-1]
    send({"type": "conversation.item.truncate", "item_id": assistant["id"], "content_index": 0, "audio_end_ms": 100})
    send({"type": "input_audio_buffer.clear"})
    send({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "c1",
                                                       "output": "{}"}})
    send({"type": "conversation.item.create", "item": {"type": "message", "role": "system",
                                                       "content": [{"type": "input_text", "text": "sys"}]}})
    send({"type": "conversation.item.retrieve", "item_id": assistant["id"]})
    send({"type": "conversation.item.delete", "item_id": assistant["id"]})
    send({"type": "response.create", "response": {"output_modalities": ["text"], "metadata": {"k": "v"}}})
    send({"type": "response.create", "response": {"conversation": "none"}})
    parallel = [e for e in out if e["type"] == "response.created"][-1]["response"]
    assert parallel["conversation_id"] is None
    send({"type": "response.cancel", "response_id": parallel["id"]})
    send({"type": "response.cancel"})
    out += session.receive_text("{bad", 0.0)
    kinds = {e["type"] for e in out}
    assert {"conversation.item.truncated", "conversation.item.deleted", "conversation.item.retrieved",
            "input_audio_buffer.cleared", "output_audio_buffer.cleared", "error", "response.done"} <= kinds
    for event in out:
        validate(event)
