"""The fault plan on the Live surface (issue 11): expiry is ``session.closed`` ``expired`` and the
session comes back at once as a new, seeded Live session; a refused key is a Live ``error``
(``invalid_api_key``) and close 4001; a SIP call is rejected by its ``live_…`` id."""

from __future__ import annotations

import httpx
import trio

from actors.events import ConnectionState
from actors.exits import ExitReason, live_closed_exit
from actors.sip_phone import SipPhone
from orchestrator.fleet import open_fleet
from orchestrator.sip_controller import SipController
from standin import EmbeddedServer, FaultPlan, ModelConfig
from standin.keys.webhooks import new_webhook_secret


def test_session_closed_reasons_decide_how_the_connection_ends():
    assert [live_closed_exit(r, 1000).reason for r in (
        "expired", "connection_lost", "close_requested", "remote_hangup", "content")] == [
        ExitReason.RECYCLE, ExitReason.DROPPED, ExitReason.ENDED, ExitReason.ENDED,
        ExitReason.FATAL]
    assert not live_closed_exit("remote_hangup", 1000).abnormal
    assert "content" in live_closed_exit("content", 1000).detail


async def test_a_session_the_server_closes_on_request_ends_closed_not_reconnected():
    """``close_requested`` from the server (an application hung up through the API): the
    session ends ``closed`` even under the permanent policy, which reconnects after a drop."""
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    async with open_fleet(server=server, api_key=server.api_key, policy="permanent") as fleet:
        sid = await fleet.add_session(protocol="live")
        await fleet.wait_connected(sid)
        (record,) = [r for r in server.connections if r.model == "live"]
        await fleet.send(sid, {"type": "session.close"})  # the server answers session.closed
        with trio.fail_after(10):
            state = await fleet.wait_state(sid, ConnectionState.CLOSED, ConnectionState.ERROR)
        assert state is ConnectionState.CLOSED and fleet.status(sid).reconnects == 0
        assert "close_requested" in fleet.status(sid).last_exit.detail


async def test_expiry_recycles_into_a_new_seeded_session():
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    async with open_fleet(server=server, api_key=server.api_key) as fleet:
        sid = await fleet.add_session(protocol="live")
        await fleet.wait_connected(sid)
        assert await fleet.ask(sid, "before expiry", timeout=10) == "You said: before expiry"
        async with fleet.subscribe(sessions=[sid], kinds=["server", "state"], buffer=10_000) as events:
            server.faults = FaultPlan(expire_after_s=0.0)
            with trio.fail_after(20):
                async for event in events:
                    if event.kind == "server" and event.payload["type"] == "session.closed":
                        assert event.payload["reason"] == "expired"
                        server.faults = FaultPlan()
                    if event.kind == "state" and event.payload["to"] == "connected":
                        break
        assert fleet.status(sid).recycles == 1
        assert await fleet.ask(sid, "after expiry", timeout=10) == "You said: after expiry"
        seeded = fleet.links[sid].core.last_restore
        assert seeded is not None and seeded.replayed_items == 2  # the first turn, seeded
    assert server.stats.faults.sessions_expired == 1


async def test_a_refused_key_is_a_live_error_and_close_4001():
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0),
                                               faults=FaultPlan(reject_keys=True))
    async with open_fleet(server=server, api_key=server.api_key, key_mode="direct",
                          max_restarts=0) as fleet:
        sid = await fleet.add_session(protocol="live")
        with trio.fail_after(20):
            state = await fleet.wait_state(sid, ConnectionState.ERROR, ConnectionState.CLOSED)
        assert state is ConnectionState.ERROR
        assert "invalid_api_key" in (fleet.status(sid).last_error or "")
    (record,) = [r for r in server.connections if r.model is None or r.model == "live"][:1]
    assert record.close_code == 4001


async def test_a_sip_call_is_rejected_by_its_live_id(nursery):
    secret = new_webhook_secret()
    controller = SipController(secret, surface="live", attach_sessions=False)
    url = await nursery.start(controller.serve)
    server = EmbeddedServer.with_generated_key(sip_port=0, webhook_url=url, webhook_secret=secret,
                                               sip_webhook_events=("live.transport.incoming",))
    await nursery.start(server.serve)
    phone = SipPhone()
    await nursery.start(phone.run)
    with trio.fail_after(20):
        call = await phone.dial(f"sip:openai@127.0.0.1:{server.sip.port}")
        if not controller.calls:
            await controller.call_announced.wait()
        (live_id,) = controller.calls
        assert live_id.startswith("live_")
        auth = {"Authorization": f"Bearer {server.api_key}"}
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
            response = await client.post(f"/v1/live/sessions/{live_id}/reject",
                                         json={"status_code": 486}, headers=auth)
            assert response.status_code == 200
            await call.ended.wait()
            missing = await client.post("/v1/live/sessions/live_nope/accept",
                                        json={"session": {"model": "gpt-live-1"}}, headers=auth)
    assert call.failure_status == 486 and server.sip.stats.rejected == 1
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "session_not_found"
    nursery.cancel_scope.cancel()
