"""SIP call control over HTTP: reject, hang up a pending call, accept after the caller left (404).

The caller is rtfleet's own :class:`~actors.sip_phone.SipPhone`; the webhook goes to a
:class:`~orchestrator.sip_controller.SipController` with no fleet attached (it verifies and
records, but decides nothing), so the test decides through the call-control API.
"""

from __future__ import annotations

import httpx
import trio

from actors.sip_phone import SipPhone
from standin import EmbeddedServer
from standin.keys.webhooks import new_webhook_secret
from orchestrator.sip_controller import SipController


async def _pending_call(nursery: trio.Nursery) -> tuple[EmbeddedServer, SipPhone, SipController]:
    secret = new_webhook_secret()
    controller = SipController(secret)
    url = await nursery.start(controller.serve)
    server = EmbeddedServer.with_generated_key(sip_port=0, webhook_url=url, webhook_secret=secret)
    await nursery.start(server.serve)
    phone = SipPhone()
    await nursery.start(phone.run)
    return server, phone, controller


async def _wait_announced(controller: SipController) -> str:
    if not controller.calls:
        await controller.call_announced.wait()
    return next(iter(controller.calls))


async def test_reject_hangup_and_accept_after_cancel(nursery: trio.Nursery) -> None:
    with trio.fail_after(20):
        server, phone, controller = await _pending_call(nursery)
        auth = {"Authorization": f"Bearer {server.api_key}"}
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
            call = await phone.dial(f"sip:openai@127.0.0.1:{server.sip.port}")
            call_id = await _wait_announced(controller)
            assert (await client.post(f"/v1/realtime/calls/{call_id}/accept")).status_code == 401
            response = await client.post(f"/v1/realtime/calls/{call_id}/reject", json={"status_code": 486},
                                         headers=auth)
            assert response.status_code == 200
            await call.ended.wait()
            assert call.state == "failed" and call.failure_status == 486

            controller.calls.clear()
            call = await phone.dial(f"sip:openai@127.0.0.1:{server.sip.port}")
            call_id = await _wait_announced(controller)
            call.hangup()  # CANCEL before the controller decides
            await call.ended.wait()
            response = await client.post(f"/v1/realtime/calls/{call_id}/accept",
                                         json={"type": "realtime"}, headers=auth)
            assert response.status_code == 404 and response.json()["error"]["code"] == "call_not_found"
            assert server.sip.stats.cancelled_before_accept == 1

            controller.calls.clear()
            call = await phone.dial(f"sip:openai@127.0.0.1:{server.sip.port}")
            call_id = await _wait_announced(controller)
            response = await client.post(f"/v1/realtime/calls/{call_id}/hangup", headers=auth)
            assert response.status_code == 200
            await call.ended.wait()
            assert call.failure_status == 603
        nursery.cancel_scope.cancel()


async def test_an_undecided_call_gets_480_after_the_accept_timeout(nursery: trio.Nursery) -> None:
    """Announced, then nobody decides: after ``sip_accept_timeout`` the caller hears 480 (not a
    ring for ever) and a late accept finds no call (404). Waits are on the call's own events;
    the tiny timeout is the server's configuration, not a sleep of the test."""
    timeout = 0.3
    secret = new_webhook_secret()
    controller = SipController(secret)
    url = await nursery.start(controller.serve)
    server = EmbeddedServer.with_generated_key(sip_port=0, webhook_url=url, webhook_secret=secret,
                                               sip_accept_timeout=timeout)
    await nursery.start(server.serve)
    phone = SipPhone()
    await nursery.start(phone.run)
    with trio.fail_after(20):
        dialled = trio.current_time()
        call = await phone.dial(f"sip:openai@127.0.0.1:{server.sip.port}")
        call_id = await _wait_announced(controller)  # the webhook was delivered: the app was reached
        await call.ended.wait()
        waited = trio.current_time() - dialled
        assert call.state == "failed" and call.failure_status == 480, call.end_reason
        assert waited >= timeout
        assert server.sip.stats.accept_timeouts == 1 and server.sip.stats.accepted == 0
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
            response = await client.post(f"/v1/realtime/calls/{call_id}/accept", json={"type": "realtime"},
                                         headers={"Authorization": f"Bearer {server.api_key}"})
        assert response.status_code == 404 and response.json()["error"]["code"] == "call_not_found"
        assert call_id not in server.sip.calls
    nursery.cancel_scope.cancel()
