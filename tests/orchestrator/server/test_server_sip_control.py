"""SIP call control over HTTP: reject, hang up a pending call, accept after the caller left (404).

The caller is rtfleet's own :class:`~actors.sip.SipPhone`; the webhook goes to a
:class:`~orchestrator.sip_controller.SipController` with no fleet attached (it verifies and
records, but decides nothing), so the test decides through the call-control API.
"""

from __future__ import annotations

import httpx
import trio

from actors.sip import SipPhone
from orchestrator.server import EmbeddedServer
from orchestrator.server.webhooks import new_webhook_secret
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
