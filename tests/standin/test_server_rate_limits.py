"""The embedded server's rate limits as faults: ``max_concurrent_sessions`` refuses a connection
over it (``error`` ``rate_limit_exceeded``, close 1013), ``tokens_per_minute`` refuses responses,
``mints_per_minute`` answers client-secret mints with 429, and ``rate_limits.updated`` reports
the real limits and what remains of them. The limiter itself is tested without sockets."""

from __future__ import annotations

import httpx
import pytest
from trio_websocket import ConnectionClosed

from standin import EmbeddedServer, FaultPlan, ModelConfig
from standin.faults.limits import WINDOW_S, RateLimiter
from standin.testing import open_client


def user_text(text: str) -> dict:
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}


def by_name(event: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in event["rate_limits"]}


# -- the limiter, sans-I/O --------------------------------------------------------------------


def test_sessions_are_counted_and_refused_over_the_limit():
    limiter, plan = RateLimiter(), FaultPlan(max_concurrent_sessions=2)
    assert limiter.admit_session(plan) and limiter.admit_session(plan)
    assert not limiter.admit_session(plan)
    assert limiter.announce(plan, 0.0)[-1] == {"name": "sessions", "limit": 2, "remaining": 0,
                                               "reset_seconds": 0.0}
    limiter.session_closed()
    assert limiter.admit_session(plan)
    assert limiter.stats.rate_limited["sessions"] == 1


def test_tokens_per_minute_refuses_once_spent_and_recovers_as_the_window_moves():
    limiter, plan = RateLimiter(), FaultPlan(tokens_per_minute=100)
    assert limiter.admit_response(plan, 0.0) is None
    limiter.spend(0.0, 60)
    limiter.spend(10.0, 50)
    message = limiter.admit_response(plan, 20.0)
    assert message is not None and "Limit 100, Used 110" in message
    tokens = by_name({"rate_limits": limiter.announce(plan, 20.0)})["tokens"]
    assert tokens == {"name": "tokens", "limit": 100, "remaining": 0, "reset_seconds": 40.0}
    # the first spend leaves the window at 60 s: 50 used, a response may start
    assert limiter.admit_response(plan, WINDOW_S + 0.5) is None
    assert by_name({"rate_limits": limiter.announce(plan, WINDOW_S + 0.5)})["tokens"]["remaining"] == 50


def test_without_limits_the_announcement_keeps_its_fixed_limits():
    limiter, plan = RateLimiter(), FaultPlan()
    limiter.spend(0.0, 7)
    names = by_name({"rate_limits": limiter.announce(plan, 1.0)})
    assert set(names) == {"requests", "tokens"}
    assert names["tokens"]["limit"] == 2_000_000 and names["tokens"]["remaining"] == 2_000_000 - 7


def test_mints_per_minute():
    limiter, plan = RateLimiter(), FaultPlan(mints_per_minute=1)
    assert limiter.admit_mint(plan, 0.0)
    assert not limiter.admit_mint(plan, 1.0)
    assert limiter.mint_reset(1.0) == pytest.approx(59.0)
    assert limiter.admit_mint(plan, 60.5)


# -- over loopback -----------------------------------------------------------------------------


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0),
                                               faults=FaultPlan(max_concurrent_sessions=2))
    await nursery.start(server.serve)
    return server


async def test_a_connection_over_max_concurrent_sessions_is_refused_then_admitted(server):
    async with open_client(server.base_url, key=server.api_key) as first, \
            open_client(server.base_url, key=server.api_key) as second:
        assert (await first.recv())["type"] == "session.created"
        assert (await second.recv())["type"] == "session.created"
        async with open_client(server.base_url, key=server.api_key) as third:
            event = await third.recv()
            assert event["type"] == "error"
            assert event["error"]["code"] == "rate_limit_exceeded"
            with pytest.raises(ConnectionClosed) as info:
                await third.recv()
            assert info.value.reason.code == 1013
        # rate_limits.updated reports the concurrency limit and the free slots
        await first.send(user_text("hi"))
        await first.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        limits = by_name((await first.recv_until("rate_limits.updated"))[-1])
        assert limits["sessions"] == {"name": "sessions", "limit": 2, "remaining": 0, "reset_seconds": 0.0}
    assert server.stats.faults.rate_limited["sessions"] == 1
    for record in server.connections:
        await record.closed.wait()
    assert server.limiter.open_sessions == 0
    async with open_client(server.base_url, key=server.api_key) as again:
        assert (await again.recv())["type"] == "session.created"


async def test_tokens_per_minute_refuses_responses_and_announces_what_remains(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0),
                                               faults=FaultPlan(tokens_per_minute=10))
    await nursery.start(server.serve)
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.recv()
        await client.send(user_text("one two three four five six seven eight"))
        await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        events = await client.recv_until("rate_limits.updated")
        done = next(e for e in events if e["type"] == "response.done")
        spent = done["response"]["usage"]["total_tokens"]
        assert spent >= 10
        tokens = by_name(events[-1])["tokens"]
        assert tokens["limit"] == 10 and tokens["remaining"] == 0 and 0 < tokens["reset_seconds"] <= 60
        await client.send({"type": "response.create", "event_id": "evt_again",
                           "response": {"output_modalities": ["text"]}})
        error = await client.recv()
        assert error["type"] == "error" and error["error"]["code"] == "rate_limit_exceeded"
        assert error["error"]["type"] == "tokens" and error["error"]["event_id"] == "evt_again"
    assert server.stats.faults.rate_limited["tokens"] == 1


async def test_client_secret_mints_over_the_limit_get_429(nursery):
    server = EmbeddedServer.with_generated_key(faults=FaultPlan(mints_per_minute=1))
    await nursery.start(server.serve)
    url = server.base_url + "/v1/realtime/client_secrets"
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient() as http:
        assert (await http.post(url, json={}, headers=headers)).status_code == 200
        refused = await http.post(url, json={}, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
