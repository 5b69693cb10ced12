"""Transcription sessions on the embedded server (``?intent=transcription``, session type
``transcription``), driven by the official ``openai`` SDK over a real WebSocket: every event
validates against ``openai.types.realtime``, the session object against
``RealtimeTranscriptionSessionCreateRequest``; an utterance is transcribed (deltas, then the
completion with usage) and never answered; what a transcription session cannot do is an
``error`` event that keeps it open; a client secret minted for one starts one."""

from __future__ import annotations

import asyncio
import base64
import json

import openai
import pytest
import trio
from openai.types.realtime import RealtimeTranscriptionSessionCreateRequest

from standin import EmbeddedServer, ModelConfig
from standin.testing import pcm16_silence, pcm16_tone, split_chunks
from tests.sdk_events import validate_server_event

COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    await nursery.start(server.serve)
    return server


def sdk_client(server: EmbeddedServer, key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key or server.api_key, base_url=f"{server.base_url}/v1",
                              websocket_base_url=f"{server.ws_url}/v1")


async def events_until(conn, last: str) -> list[dict]:
    """Raw server events up to ``last``, each validated against the SDK's models."""
    events = []
    while True:
        raw = json.loads(await conn.recv_bytes())
        validate_server_event(raw)
        events.append(raw)
        if raw["type"] == last:
            return events


async def speak(conn, ms_of_tone: int) -> None:
    pcm = pcm16_silence(200) + pcm16_tone(ms_of_tone) + pcm16_silence(800)
    for chunk in split_chunks(pcm, 4800):
        await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())


def transcription_run(server: EmbeddedServer) -> dict:
    async def main() -> dict:
        client = sdk_client(server)
        try:
            async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
                [created] = await events_until(conn, "session.created")
                await conn.session.update(session={
                    "type": "transcription", "include": ["item.input_audio_transcription.logprobs"],
                    "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe", "language": "en"}}}})
                [updated] = await events_until(conn, "session.updated")
                await speak(conn, 600)
                first = await events_until(conn, COMPLETED)
                await speak(conn, 300)
                second = await events_until(conn, COMPLETED)
                # a response is not for a transcription session: an error, and it goes on
                await conn.response.create()
                [refused] = await events_until(conn, "error")
                await conn.session.update(session={"type": "realtime", "instructions": "x"})
                [changed] = await events_until(conn, "error")
                await conn.session.update(session={"type": "transcription", "output_modalities": ["text"]})
                [unknown] = await events_until(conn, "error")
                await conn.input_audio_buffer.append(audio=base64.b64encode(pcm16_tone(300)).decode())
                await conn.input_audio_buffer.commit()
                third = await events_until(conn, COMPLETED)
                return {"created": created, "updated": updated, "first": first, "second": second,
                        "refused": refused, "changed": changed, "unknown": unknown, "third": third}
        finally:
            await client.close()

    return asyncio.run(main())


async def test_the_sdk_transcribes_utterances_and_nothing_answers_them(server):
    run = await trio.to_thread.run_sync(transcription_run, server)
    for key in ("created", "updated"):
        session = run[key]["session"]
        RealtimeTranscriptionSessionCreateRequest.model_validate(session)
        assert session["type"] == "transcription" and session["object"] == "realtime.transcription_session"
        assert "output" not in session["audio"] and "instructions" not in session
    assert run["created"]["session"]["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"
    assert run["updated"]["session"]["audio"]["input"]["transcription"]["language"] == "en"
    assert run["updated"]["session"]["include"] == ["item.input_audio_transcription.logprobs"]
    for turn, heard_ms in ((run["first"], 600), (run["second"], 300)):
        kinds = [e["type"] for e in turn]
        assert kinds[:5] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                             "input_audio_buffer.committed", "conversation.item.added",
                             "conversation.item.done"]
        assert not any(k.startswith("response.") for k in kinds)
        item_id = turn[2]["item_id"]
        deltas = [e for e in turn if e["type"] == DELTA]
        completed = turn[-1]
        assert {e["item_id"] for e in deltas} == {completed["item_id"]} == {item_id}
        assert "".join(e["delta"] for e in deltas) == completed["transcript"]
        # the deterministic model hears the utterance's length (VAD speech, plus its silence)
        stopped, started = turn[1]["audio_end_ms"], turn[0]["audio_start_ms"]
        assert completed["transcript"] == f"audio of {stopped - started} ms"
        assert stopped - started >= heard_ms
        assert completed["usage"]["type"] == "tokens" and completed["usage"]["output_tokens"] == len(deltas)
    for key, code, param in (("refused", "invalid_value", "type"), ("changed", "invalid_value", "session.type"),
                             ("unknown", "unknown_parameter", "session.output_modalities")):
        error = run[key]["error"]
        assert (error["code"], error["param"]) == (code, param), error
    # a manual commit (turn detection on, but the client may commit) is transcribed too
    kinds = [e["type"] for e in run["third"]]
    assert kinds[:2] == ["input_audio_buffer.speech_started", "input_audio_buffer.committed"]
    assert run["third"][1]["item_id"] == run["third"][0]["item_id"] == run["third"][-1]["item_id"]
    assert not any(k.startswith("response.") for k in kinds)


def secret_run(server: EmbeddedServer) -> dict:
    async def main() -> dict:
        client = sdk_client(server)
        try:
            secret = await client.realtime.client_secrets.create(session={
                "type": "transcription", "audio": {"input": {
                    "turn_detection": None, "transcription": {"model": "whisper-1"}}}})
            assert secret.session.type == "transcription"
            user = sdk_client(server, key=secret.value)
            try:
                # the secret's session says what it is: no intent (and no model) in the URL
                async with user.realtime.connect() as conn:
                    [created] = await events_until(conn, "session.created")
                    await conn.input_audio_buffer.append(audio=base64.b64encode(pcm16_tone(500)).decode())
                    await conn.input_audio_buffer.commit()
                    turn = await events_until(conn, COMPLETED)
                    return {"created": created, "turn": turn}
            finally:
                await user.close()
        finally:
            await client.close()

    return asyncio.run(main())


async def test_a_client_secret_minted_for_transcription_starts_a_transcription_session(server):
    run = await trio.to_thread.run_sync(secret_run, server)
    session = run["created"]["session"]
    assert session["type"] == "transcription" and session["audio"]["input"]["turn_detection"] is None
    kinds = [e["type"] for e in run["turn"]]
    # whisper-1 does not stream: one delta holds the whole transcript; its usage is seconds
    assert kinds == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
                     DELTA, COMPLETED]
    assert run["turn"][3]["delta"] == run["turn"][4]["transcript"] == "audio of 500 ms"
    assert run["turn"][4]["usage"] == {"type": "duration", "seconds": 0.5}


def bad_intent(server: EmbeddedServer) -> dict:
    async def main() -> dict:
        client = sdk_client(server)
        try:
            async with client.realtime.connect(extra_query={"intent": "translation"}) as conn:
                return json.loads(await conn.recv_bytes())
        finally:
            await client.close()

    return asyncio.run(main())


async def test_an_unknown_intent_is_refused_with_an_error(server):
    error = await trio.to_thread.run_sync(bad_intent, server)
    assert error["type"] == "error" and error["error"]["param"] == "intent"
    assert "transcription" in error["error"]["message"]
