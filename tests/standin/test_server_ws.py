"""The embedded server over real sockets on 127.0.0.1 (trio-websocket and httpx clients)."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from standin import EmbeddedServer, ModelConfig
from standin.testing import open_client, pcm16_silence, pcm16_tone

TEXT_TURN_TAIL = [
    "response.output_text.done", "response.content_part.done", "response.output_item.done",
    "conversation.item.done", "response.done", "rate_limits.updated",
]


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0), clock=Clock())
    await nursery.start(server.serve)
    return server


def user_text(text: str) -> dict:
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}


async def expect_refusal(client, code: str, close_code: int) -> dict:
    event = await client.recv()
    assert event["type"] == "error" and event["error"]["code"] == code
    with pytest.raises(ConnectionClosed) as info:
        await client.recv()
    assert info.value.reason.code == close_code
    return event


async def test_serve_reports_url_and_binds_loopback(server):
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.ws_url == "ws://" + server.base_url[len("http://"):]


async def test_text_turn_over_websocket(server):
    async with open_client(server.base_url, key=server.api_key) as client:
        created = await client.recv()
        assert created["type"] == "session.created"
        await client.send(user_text("hello there"))
        assert [e["type"] for e in await client.recv_until("conversation.item.done")] == [
            "conversation.item.added", "conversation.item.done"]
        await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        events = await client.recv_until("rate_limits.updated")
        kinds = [e["type"] for e in events]
        assert kinds[:4] == ["response.created", "response.output_item.added", "conversation.item.added",
                             "response.content_part.added"]
        assert set(kinds[4:-6]) == {"response.output_text.delta"} and len(kinds[4:-6]) >= 3
        assert kinds[-6:] == TEXT_TURN_TAIL
        assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == \
            "You said: hello there"
    (record,) = server.connections
    await record.closed.wait()
    assert record.auth_kind == "api_key" and record.model == "gpt-realtime" and record.call_id is None
    assert [e["type"] for e in record.received] == ["conversation.item.create", "response.create"]
    assert [i["role"] for i in record.items] == ["user", "assistant"]
    assert record.closed_by == "client"
    assert record.events_sent == 1 + 2 + len(events)
    assert server.stats.connections_opened == server.stats.connections_closed == 1


async def test_subprotocol_auth_selects_realtime(server):
    async with open_client(server.base_url, key=server.api_key, auth="subprotocol") as client:
        assert client.ws.subprotocol == "realtime"
        assert (await client.recv())["type"] == "session.created"
    assert server.connections[0].auth_kind == "api_key"


@pytest.mark.parametrize("key", [None, "sk-wrong", "ek_not_minted"])
@pytest.mark.parametrize("auth", ["header", "subprotocol"])
async def test_auth_failure_is_error_then_close_4001(server, key, auth):
    async with open_client(server.base_url, key=key, auth=auth) as client:
        event = await expect_refusal(client, "invalid_api_key", 4001)
        assert event["error"]["type"] == "invalid_request_error"
        assert server.api_key not in json.dumps(event)
    assert server.connections[-1].auth_kind is None and server.connections[-1].close_code == 4001
    assert server.stats.auth_failures == 1


async def test_models_outside_the_served_list_are_refused_as_the_hosted_service_does(nursery):
    server = EmbeddedServer.with_generated_key(models={"gpt-realtime"})
    await nursery.start(server.serve)
    async with open_client(server.base_url, key=server.api_key, model="gpt-nonesuch") as client:
        event = await expect_refusal(client, "model_not_found", 1008)
        assert event["error"]["param"] == "model" and "gpt-nonesuch" in event["error"]["message"]
    async with open_client(server.base_url, key=server.api_key, model="gpt-realtime") as client:
        assert (await client.recv())["type"] == "session.created"
    async with httpx.AsyncClient() as http:
        url = server.base_url + "/v1/realtime/client_secrets"
        headers = {"Authorization": f"Bearer {server.api_key}"}
        refused = await http.post(url, headers=headers,
                                  json={"session": {"type": "realtime", "model": "gpt-nonesuch"}})
        minted = await http.post(url, headers=headers,
                                 json={"session": {"type": "realtime", "model": "gpt-realtime"}})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "model_not_found"
    assert minted.status_code == 200


async def test_model_and_call_id_rules(server):
    async with open_client(server.base_url, key=server.api_key, model="m", call_id="rtc_1") as client:
        event = await expect_refusal(client, "invalid_value", 1008)
        assert event["error"]["param"] == "call_id"
    async with open_client(server.base_url, key=server.api_key, model=None) as client:
        event = await expect_refusal(client, "missing_required_parameter", 1008)
        assert event["error"]["param"] == "model"
    async with open_client(server.base_url, key=server.api_key, model=None, call_id="rtc_1") as client:
        assert (await client.recv())["type"] == "session.created"
        await client.send({"type": "output_audio_buffer.clear"})
        assert (await client.recv())["type"] == "output_audio_buffer.cleared"
    assert server.connections[-1].call_id == "rtc_1"


async def test_beta_header_is_refused(server):
    async with open_client(server.base_url, key=server.api_key, headers=[("OpenAI-Beta", "realtime=v1")]) as client:
        await expect_refusal(client, "beta_api_shape_disabled", 4000)


async def test_bad_input_gives_errors_and_the_session_stays_open(server):
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.recv()
        await client.send_raw("{oops")
        await client.send_raw(b"\x00\x01")
        await client.send({"type": "nonsense.event", "event_id": "c1"})
        await client.send({"type": "input_audio_buffer.commit", "event_id": "c2"})
        await client.send({"type": "response.cancel", "event_id": "c3"})
        codes = [(await client.recv())["error"] for _ in range(5)]
        assert [(e["code"], e["event_id"]) for e in codes] == [
            ("invalid_json", None), ("unsupported_frame", None), ("invalid_value", "c1"),
            ("input_audio_buffer_commit_empty", "c2"), ("response_cancel_not_active", "c3")]
        await client.send(user_text("fine"))
        assert (await client.recv())["type"] == "conversation.item.added"
    assert server.stats.errors_sent == 5


async def test_second_response_create_is_refused_while_one_is_active(nursery):
    server = EmbeddedServer.with_generated_key()  # real-time pacing keeps the audio response active
    await nursery.start(server.serve)
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.recv()
        await client.send(user_text("a long answer please"))
        await client.send({"type": "response.create"})
        await client.send({"type": "response.create", "event_id": "again"})
        events = await client.recv_until("error")
        assert events[-1]["error"]["code"] == "conversation_already_has_active_response"
        assert "response.done" not in [e["type"] for e in events]


async def test_audio_turn_with_server_vad_paced_in_real_time(nursery):
    server = EmbeddedServer.with_generated_key()  # pace=1.0
    await nursery.start(server.serve)
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.recv()
        await client.send({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}})
        assert (await client.recv())["type"] == "session.updated"
        events = []
        arrivals = []

        async def read_turn() -> None:  # reads while the audio is still being sent
            while not events or events[-1]["type"] != "rate_limits.updated":
                events.append(await client.recv())
                arrivals.append(trio.current_time())

        async with trio.open_nursery() as readers:
            readers.start_soon(read_turn)
            await client.append_audio(pcm16_silence(300) + pcm16_tone(600) + pcm16_silence(700))
    kinds = [e["type"] for e in events]
    assert kinds[:11] == [
        "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
        "conversation.item.added", "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "response.created", "response.output_item.added", "conversation.item.added", "response.content_part.added"]
    body = kinds[11:-7]
    assert body == ["response.output_audio_transcript.delta", "response.output_audio.delta"] * 6
    assert kinds[-7:] == [
        "response.output_audio.done", "response.output_audio_transcript.done", "response.content_part.done",
        "response.output_item.done", "conversation.item.done", "response.done", "rate_limits.updated"]
    audio_times = [t for t, k in zip(arrivals, kinds) if k == "response.output_audio.delta"]
    assert audio_times[-1] - audio_times[0] >= 0.3  # 6 chunks 100 ms apart (0.5 s), not all at once
    assert events[1]["audio_end_ms"] == 1400


async def test_barge_in_over_websocket(nursery):
    server = EmbeddedServer.with_generated_key()
    await nursery.start(server.serve)
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.recv()
        await client.append_audio(pcm16_silence(300) + pcm16_tone(600) + pcm16_silence(700))
        await client.recv_until("response.output_audio.delta")
        await client.append_audio(pcm16_tone(200))
        events = await client.recv_until("response.done")
        kinds = [e["type"] for e in events]
        assert "input_audio_buffer.speech_started" in kinds
        assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
        done = events[-1]["response"]
        assert done["status"] == "cancelled" and done["status_details"]["reason"] == "turn_detected"


# -- client secrets over HTTP ------------------------------------------------------------------------

async def test_client_secret_http_and_connect(server):
    url = server.base_url + "/v1/realtime/client_secrets"
    async with httpx.AsyncClient() as http:
        assert (await http.post(url, json={})).status_code == 401
        bad = await http.post(url, json={}, headers={"Authorization": "Bearer sk-nope"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
        auth = {"Authorization": f"Bearer {server.api_key}"}
        too_short = await http.post(url, json={"expires_after": {"anchor": "created_at", "seconds": 5}}, headers=auth)
        assert too_short.status_code == 400 and too_short.json()["error"]["param"] == "expires_after.seconds"
        ok = await http.post(url, headers=auth, json={
            "expires_after": {"anchor": "created_at", "seconds": 60},
            "session": {"type": "realtime", "model": "gpt-realtime-mini", "output_modalities": ["text"]}})
        assert ok.status_code == 200
        minted = ok.json()
        assert minted["value"].startswith("ek_") and minted["expires_at"] == int(server.clock()) + 60
        assert minted["session"]["model"] == "gpt-realtime-mini"
        as_bearer = await http.post(url, json={}, headers={"Authorization": f"Bearer {minted['value']}"})
        assert as_bearer.status_code == 401  # minting needs a standard key
        assert (await http.get(url, headers=auth)).status_code == 405
        assert (await http.get(server.base_url + "/nope")).status_code == 404
    for auth_kind in ("header", "subprotocol"):
        async with open_client(server.base_url, key=minted["value"], model=None, auth=auth_kind) as client:
            session = (await client.recv())["session"]
            assert session["model"] == "gpt-realtime-mini" and session["output_modalities"] == ["text"]
            assert session["id"] != minted["session"]["id"]
    assert [r.auth_kind for r in server.connections] == ["client_secret", "client_secret"]
    server.clock.now += 60  # the secret expires: new sessions are refused
    async with open_client(server.base_url, key=minted["value"]) as client:
        event = await expect_refusal(client, "invalid_api_key", 4001)
        assert "expired" in event["error"]["message"]
    assert server.stats.client_secrets_minted == 1


async def test_unknown_websocket_path_is_a_json_404_naming_the_right_path(server):
    # e.g. an SDK given base_url "http://host:port" instead of ".../v1" asks for /realtime
    port = int(server.base_url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"GET /realtime?model=gpt-realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        answer = b""
        while chunk := await stream.receive_some(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404")
    assert b"application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "not_found"
    assert "/v1/realtime" in error["message"] and "/v1" in error["message"]


async def test_server_stops_when_cancelled():
    server = EmbeddedServer.with_generated_key()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        port = int(server.base_url.rsplit(":", 1)[1])
        nursery.cancel_scope.cancel()
    assert server.base_url is None
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)
