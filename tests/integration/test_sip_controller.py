"""rtfleet as the controller of incoming SIP calls, end to end over loopback:

SIPp calls the embedded server -> signed ``realtime.call.incoming`` webhook -> the controller
verifies it, dedupes the redelivery, accepts -> the sideband WebSocket is a fleet session that
sees the caller's turn answered (and the caller's DTMF); a forged webhook is refused (401).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
import trio

from orchestrator.fleet import open_fleet
from standin import EmbeddedServer
from standin.sessions.sip_testing import caller_audio_packets, sipp_command, uac_scenario, write_pcap
from standin.keys.webhooks import new_webhook_secret, sign
from orchestrator.sip_controller import SipController

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed")


async def test_webhook_accept_sideband_turn_with_sipp_caller(tmp_path: Path) -> None:
    write_pcap(tmp_path / "caller.pcap", caller_audio_packets())
    scenario = tmp_path / "caller.xml"
    scenario.write_text(uac_scenario("caller.pcap", hold_ms=3000))
    secret = new_webhook_secret()
    controller = SipController(secret, {"type": "realtime", "instructions": "Be brief."})
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(controller.serve)
            server = EmbeddedServer.with_generated_key(sip_port=0, webhook_url=url, webhook_secret=secret)
            async with open_fleet(server=server, api_key=server.api_key) as fleet:
                controller.attach(fleet, api_base=fleet.url, api_key=server.api_key)
                server.sip.webhook.redeliveries = 1  # the hosted service may deliver twice
                async with fleet.subscribe(types=["response.done", "input_audio_buffer.dtmf_event_received"]) as sub:
                    result = await trio.run_process(
                        sipp_command(server.sip.port, scenario, calls=1, rate=1), cwd=tmp_path,
                        check=False, capture_stdout=True, capture_stderr=True)
                    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
                    seen = []
                    with trio.move_on_after(0.5):  # everything was delivered while the call ran
                        while len(seen) < 2:
                            seen.append((await sub.receive()).payload)
                (call_id,) = controller.accepted
                sid = controller.calls[call_id]
                by_type = {e["type"]: e for e in seen}
                assert by_type["response.done"]["response"]["status"] == "completed"
                assert by_type["input_audio_buffer.dtmf_event_received"]["event"] == "5"
                assert controller.duplicates == 1 and server.sip.stats.accepted == 1
                await fleet.wait_state(sid, "closed")  # the caller's BYE ended the sideband
                (record,) = [r for r in server.connections if r.transport == "sideband"]
                assert record.call_id == call_id

                # a forged webhook for a live-looking call is refused and never accepted
                body = json.dumps({"object": "event", "id": "evt_forged", "type": "realtime.call.incoming",
                                   "created_at": int(time.time()),
                                   "data": {"call_id": "rtc_forged", "sip_headers": []}}).encode()
                stamp = int(time.time())
                forged = sign(new_webhook_secret(), "evt_forged", stamp, body)
                stale = sign(secret, "evt_forged", stamp - 301, body)
                async with httpx.AsyncClient() as client:
                    for signature, when in ((forged, stamp), (stale, stamp - 301), ("", stamp)):
                        response = await client.post(url, content=body, headers={
                            "webhook-id": "evt_forged", "webhook-timestamp": str(when),
                            "webhook-signature": signature})
                        assert response.status_code == 401
                assert controller.refused_signatures == 3 and "rtc_forged" not in controller.calls
            nursery.cancel_scope.cancel()
