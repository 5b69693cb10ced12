"""GPT-Live conformance with the official ``openai`` SDK: ``AsyncOpenAI(...).live.connect()``,
unchanged, completes a text turn (commentary) and an audio turn against the embedded server, and
every server event it receives validates against ``openai.types.live.ServerEvent``; every client
event rtfleet writes validates against ``openai.types.live.ClientEvent``."""

from __future__ import annotations

import asyncio
import base64
import json
import typing
from typing import Annotated

import openai
import trio
from openai.types.live import ClientEvent, ServerEvent
from pydantic import Field, TypeAdapter

from actors.proto.client import ClientCore
from actors.proto.live.dialect import LIVE
from actors.proto.session import SessionConfig
from standin import EmbeddedServer, ModelConfig
from standin.testing import pcm16_silence, pcm16_tone, split_chunks


def _adapter(alias) -> TypeAdapter:
    args = typing.get_args(alias)
    union = args[0] if args and typing.get_origin(args[0]) is typing.Union else alias
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


SERVER_EVENT = _adapter(ServerEvent)
CLIENT_EVENT = _adapter(ClientEvent)


def sdk_client(server: EmbeddedServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=server.api_key, base_url=f"{server.base_url}/v1",
                              websocket_base_url=f"{server.ws_url}/v1")


async def _until_usage(conn) -> list[dict]:
    """Raw server events until the answer's ``session.usage.updated``; each parsed by the SDK."""
    events = []
    while True:
        raw = await conn.recv_bytes()
        assert conn.parse_event(raw).type == json.loads(raw)["type"]
        events.append(json.loads(raw))
        if events[-1]["type"] == "session.usage.updated":
            return events


def sdk_turns(server: EmbeddedServer) -> tuple[list[dict], list[dict], list[dict]]:
    pcm = pcm16_silence(300) + pcm16_tone(600) + pcm16_silence(700)

    async def main():
        client = sdk_client(server)
        try:
            async with client.live.connect() as conn:
                await conn.send({"type": "session.start", "event_id": "start",
                                 "session": {"model": "gpt-live-1", "instructions": "Be brief."}})
                started = json.loads(await conn.recv_bytes())
                await conn.send({"type": "session.commentary.append", "content": "hello live",
                                 "delegation_id": None, "event_id": "c1"})
                text_turn = await _until_usage(conn)
                for chunk in split_chunks(pcm, 20):
                    await conn.send({"type": "session.input_audio.append",
                                     "audio": base64.b64encode(chunk).decode()})
                audio_turn = await _until_usage(conn)
                # delegation to the client: the model hands the task over, the app answers it
                await conn.send({"type": "session.commentary.append", "content": "delegate: order 7",
                                 "delegation_id": None})
                appended, delegated = [json.loads(await conn.recv_bytes()) for _ in range(2)]
                await conn.send({"type": "session.thinking.append", "content": "ships today",
                                 "delegation_id": delegated["delegation"]["id"]})
                result = await _until_usage(conn)
                others = []
                for event in ({"type": "session.input_audio.mute"}, {"type": "session.input_audio.unmute"},
                              {"type": "session.update", "session": {"delegation": {
                                  "type": "client", "acknowledgement_delay_ms": 100}}},
                              {"type": "session.update", "session": {"instructions": "no"}},
                              {"type": "response.create"}, {"type": "no.such.event"}):
                    await conn.send(event)  # the SDK sends a dict as it is
                    others.append(json.loads(await conn.recv_bytes()))
                await conn.send({"type": "session.close"})
                closed = json.loads(await conn.recv_bytes())
                return [started], text_turn + audio_turn, [appended, delegated, *result, *others, closed]
        finally:
            await client.close()

    return asyncio.run(main())


async def test_sdk_live_connect_completes_text_and_audio_turns(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    await nursery.start(server.serve)
    started, turns, closed = await trio.to_thread.run_sync(sdk_turns, server)
    assert started[0]["type"] == "session.started" and started[0]["client_event_id"] == "start"
    assert started[0]["session"]["model"] == "gpt-live-1"
    kinds = [e["type"] for e in turns]
    assert kinds[0] == "session.commentary.appended" and turns[0]["client_event_id"] == "c1"
    said = "".join(e["delta"] for e in turns if e["type"] == "session.output_transcript.delta")
    assert said.startswith("You said: hello live")
    heard = [e["delta"] for e in turns if e["type"] == "session.input_transcript.delta"]
    assert len(heard) == 1 and heard[0].startswith("audio of ")
    assert "You said: audio of" in said
    assert kinds.count("session.output_audio.delta") == said.count(" ") + 2
    appended, delegated, *rest = closed
    assert delegated["type"] == "session.delegation.created"
    assert delegated["delegation"]["target"] == "client"
    assert "Result: ships today" in "".join(
        e["delta"] for e in rest if e["type"] == "session.output_transcript.delta")
    others = [e for e in rest if e["type"] not in (
        "session.output_transcript.delta", "session.output_audio.delta", "session.usage.updated",
        "session.thinking.appended")]
    assert [e["type"] for e in others] == [
        "session.input_audio.muted", "session.input_audio.unmuted", "session.updated",
        "error", "error", "error", "session.closed"]
    assert [e["error"]["code"] for e in others if e["type"] == "error"] == [
        "immutable_parameter", "unsupported_delegation", "invalid_value"]
    assert others[-1]["reason"] == "close_requested"
    for event in started + turns + closed:
        SERVER_EVENT.validate_python(event)


def test_rtfleet_live_client_events_validate():
    """What the Live edge writes, for every canonical event it sends, is a valid Live event."""
    core = ClientCore(SessionConfig(instructions="Be brief.", voice="marin"), protocol=LIVE)
    core.connection_started()
    written = core.outgoing()
    core.submit({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}})
    core.submit({"type": "conversation.item.create", "item": {
        "type": "message", "role": "system", "content": [{"type": "input_text", "text": "rule"}]}})
    core.submit({"type": "response.create"})
    core.submit({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\0" * 960).decode()})
    core.submit({"type": "session.thinking.append", "content": "quiet", "delegation_id": None})
    core.receive(json.dumps({"type": "session.started", "event_id": "e", "session": {
        "id": "s", "expires_at": 2_000_000_000, "model": "gpt-live-1", "status": "active"}}))
    written += core.outgoing()
    assert [e["type"] for e in written] == [
        "session.start", "session.commentary.append", "session.instructions.append",
        "session.input_audio.append", "session.thinking.append"]
    for event in written:
        CLIENT_EVENT.validate_python(event)
