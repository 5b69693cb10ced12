"""Every fault of a FaultPlan happens, observably, over real sockets."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from standin import EmbeddedServer, FaultPlan, ModelConfig
from standin.sessions import websocket as ws_module
from standin.testing import open_client


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    await nursery.start(server.serve)
    return server


def user_text(text: str) -> dict:
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}


async def receive_until_closed(client) -> tuple[list, int]:
    messages = []
    with pytest.raises(ConnectionClosed) as info:
        while True:
            messages.append(await client.ws.get_message())
    return messages, info.value.reason.code


async def test_drop_after_events_aborts_tcp_without_close_frame(server):
    server.faults = FaultPlan(drop_after_events=3)
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.send(user_text("hi"))
        messages, code = await receive_until_closed(client)
    assert code == 1006  # no close frame: abnormal closure
    assert [json.loads(m)["type"] for m in messages] == [
        "session.created", "conversation.item.added", "conversation.item.done"]
    record = server.connections[0]
    await record.closed.wait()
    assert (record.close_code, record.closed_by, record.events_sent) == (1006, "server", 3)
    assert server.stats.faults.drops["after_events"] == 1 and server.stats.faults.aborted == 1


@pytest.mark.parametrize("code", [1011, 1012])
async def test_drop_with_a_close_code(server, code):
    server.faults = FaultPlan(drop_after_events=1, drop_mode="close", drop_close_code=code)
    async with open_client(server.base_url, key=server.api_key) as client:
        messages, got = await receive_until_closed(client)
    assert got == code and len(messages) == 1
    assert server.stats.faults.closed_with_code[code] == 1


async def test_abort_falls_back_to_1011_when_the_socket_cannot_be_found(server, monkeypatch):
    monkeypatch.setattr(ws_module, "abort_connection", lambda *_: False)
    server.faults = FaultPlan(drop_after_events=1)
    async with open_client(server.base_url, key=server.api_key) as client:
        _, code = await receive_until_closed(client)
    assert code == 1011 and server.stats.faults.abort_fallbacks == 1


async def test_drop_after_seconds(server):
    server.faults = FaultPlan(drop_after_s=0.2)
    async with open_client(server.base_url, key=server.api_key) as client:
        start = trio.current_time()
        _, code = await receive_until_closed(client)
    assert code == 1006 and trio.current_time() - start >= 0.15
    assert server.stats.faults.drops["after_s"] == 1


async def test_drop_rate(server):
    server.faults = FaultPlan(drop_rate=1.0)  # certain within the first second: at once
    async with open_client(server.base_url, key=server.api_key) as client:
        _, code = await receive_until_closed(client)
    assert code == 1006 and server.stats.faults.drops["rate"] == 1


async def test_plan_change_reaches_open_connections(server):
    async with open_client(server.base_url, key=server.api_key) as client:
        assert (await client.recv())["type"] == "session.created"
        server.faults = FaultPlan(drop_after_s=0.0, drop_mode="close", drop_close_code=1012)
        _, code = await receive_until_closed(client)
    assert code == 1012


async def test_reject_keys(server):
    server.faults = FaultPlan(reject_keys=True)
    async with open_client(server.base_url, key=server.api_key) as client:
        event = await client.recv()
        assert event["error"]["code"] == "invalid_api_key"
        _, code = await receive_until_closed(client)
    assert code == 4001
    async with httpx.AsyncClient() as http:
        response = await http.post(server.base_url + "/v1/realtime/client_secrets", json={},
                                   headers={"Authorization": f"Bearer {server.api_key}"})
    assert response.status_code == 401
    assert server.stats.faults.keys_rejected == 2


async def test_latency_delays_every_event(server):
    server.faults = FaultPlan(latency_ms=200)
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.recv()
        start = trio.current_time()
        await client.send(user_text("hi"))
        await client.recv_until("conversation.item.done")
        assert trio.current_time() - start >= 0.19
    assert server.stats.faults.delayed_events >= 3


async def test_session_expires_early(server):
    server.faults = FaultPlan(expire_after_s=0.1)
    async with open_client(server.base_url, key=server.api_key) as client:
        assert (await client.recv())["type"] == "session.created"
        event = await client.recv()
        assert event["type"] == "error"
        assert (event["error"]["type"], event["error"]["code"]) == ("invalid_request_error", "session_expired")
        _, code = await receive_until_closed(client)
    assert code == 1001 and server.stats.faults.sessions_expired == 1


async def test_max_session_length_ends_the_session(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(max_session_s=0.1))
    await nursery.start(server.serve)
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.recv()
        assert (await client.recv())["error"]["code"] == "session_expired"
        _, code = await receive_until_closed(client)
    assert code == 1001 and server.stats.sessions_ended_max_length == 1


@pytest.mark.parametrize("kind", ["invalid_json", "unknown_type", "binary", "oversized"])
async def test_malformed_frames(server, kind):
    server.faults = FaultPlan(malformed_every=2, malformed_kinds=(kind,), oversized_bytes=2**20 + 10)
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.send(user_text("hi"))
        frames = [await client.ws.get_message() for _ in range(4)]
    assert json.loads(frames[0])["type"] == "session.created"
    assert json.loads(frames[1])["type"] == "conversation.item.added"
    bad = frames[2]
    if kind == "binary":
        assert isinstance(bad, bytes)
    elif kind == "invalid_json":
        with pytest.raises(ValueError):
            json.loads(bad)
    elif kind == "unknown_type":
        assert json.loads(bad)["type"] == "rtfleet.fault.unknown_type"
    else:
        assert len(bad) == 2**20 + 10 and json.loads(bad)["type"] == "rtfleet.fault.oversized"
    assert json.loads(frames[3])["type"] == "conversation.item.done"  # the session goes on
    assert server.stats.faults.malformed[kind] == 1


async def test_oversized_frame_trips_a_default_client_limit(server):
    server.faults = FaultPlan(malformed_every=1, malformed_kinds=("oversized",))
    async with open_client(server.base_url, key=server.api_key, max_message_size=2**20) as client:
        await client.recv()
        with pytest.raises(ConnectionClosed) as info:
            await client.recv()
    assert info.value.reason.code == 1009


def classify(frame: str | bytes) -> str:
    if isinstance(frame, bytes):
        return "binary"
    try:
        kind = json.loads(frame)["type"]
    except ValueError:
        return "invalid_json"
    return kind.removeprefix("rtfleet.fault.")


async def test_fault_decisions_are_seeded_per_connection(nursery):
    async def kinds_seen(server: EmbeddedServer) -> list[str]:
        async with open_client(server.base_url, key=server.api_key) as client:
            for _ in range(3):
                await client.send(user_text("x"))
            return [classify(await client.ws.get_message()) for _ in range(14)]

    runs = []
    for _ in range(2):  # two fresh servers, same plan: connection 1 makes the same choices
        server = EmbeddedServer.with_generated_key(faults=FaultPlan(seed=7, malformed_every=1))
        await nursery.start(server.serve)
        runs.append(await kinds_seen(server))
    assert runs[0] == runs[1]
    assert runs[0][::2] == ["session.created"] + ["conversation.item.added", "conversation.item.done"] * 3
    assert len(set(runs[0][1::2])) > 1  # several kinds were drawn
