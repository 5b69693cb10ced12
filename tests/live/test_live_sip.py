"""A SIP call answered on the GPT-Live surface, through the sideband, over loopback (issue 11).

SIPp calls the embedded server, which announces the call with a signed
``live.transport.incoming`` webhook (``data.session_id``, a ``live_…`` id); rtfleet's controller
accepts it with ``POST /v1/live/sessions/{id}/accept`` (``{"session": {"model": …}}``) and
attaches the sideband ``/v1/live/sessions/{id}/attach`` as a fleet session speaking Live: it sees
the caller's speech heard and answered (the answer played to the caller over RTP), the caller's
DTMF as ``transport.dtmf.received``, and the caller's BYE as ``session.closed``
``remote_hangup``. The official SDK's own sideband client then does the same, unchanged, and
every event it receives validates against ``openai.types.live``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import openai
import pytest
import trio

from orchestrator.fleet import open_fleet
from orchestrator.sip_controller import SipController
from standin import EmbeddedServer
from standin.keys.webhooks import new_webhook_secret
from standin.sessions.sip_testing import caller_audio_packets, sipp_command, uac_scenario, write_pcap
from tests.live.test_live_sdk_conformance import SERVER_EVENT

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed")

LIVE_EVENTS = ("live.transport.incoming",)


async def test_sip_call_answered_on_the_live_surface_through_the_sideband(tmp_path: Path) -> None:
    write_pcap(tmp_path / "caller.pcap", caller_audio_packets())
    scenario = tmp_path / "caller.xml"
    scenario.write_text(uac_scenario("caller.pcap", hold_ms=3000))
    secret = new_webhook_secret()
    controller = SipController(secret, surface="live",
                               live_session={"model": "gpt-live-1", "instructions": "Be brief."})
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(controller.serve)
            server = EmbeddedServer.with_generated_key(
                sip_port=0, webhook_url=url, webhook_secret=secret, sip_webhook_events=LIVE_EVENTS)
            async with open_fleet(server=server, api_key=server.api_key) as fleet:
                controller.attach(fleet, api_base=fleet.url, api_key=server.api_key)
                async with fleet.subscribe(kinds=["server", "state"], buffer=100_000) as sub:
                    result = await trio.run_process(
                        sipp_command(server.sip.port, scenario, calls=1, rate=1), cwd=tmp_path,
                        check=False, capture_stdout=True, capture_stderr=True)
                    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
                    (live_id,) = controller.accepted
                    sid = controller.calls[live_id]
                    await fleet.wait_state(sid, "closed")  # the caller's BYE ended the sideband
                    seen = []
                    while True:
                        try:
                            seen.append(sub.receive_nowait())
                        except trio.WouldBlock:
                            break
            nursery.cancel_scope.cancel()
    assert live_id.startswith("live_") and server.sip.stats.accepted == 1
    kinds = [e.payload["type"] for e in seen if e.kind == "server"]
    assert kinds[0] == "session.started"
    done = [e.payload for e in seen if e.kind == "server" and e.payload["type"] == "response.done"]
    assert done and done[0]["response"]["status"] == "completed"
    assert "You said: audio of" in done[0]["response"]["output"][0]["content"][0]["transcript"]
    assert "transport.dtmf.received" in kinds
    closed = [e.payload for e in seen if e.kind == "server" and e.payload["type"] == "session.closed"]
    assert [c["reason"] for c in closed] == ["remote_hangup"]
    (call,) = server.sip.finished
    assert call.audio_frames_sent > 0  # the answer was played to the caller over RTP
    (record,) = [r for r in server.connections if r.transport == "sideband"]
    assert record.call_id == live_id


def sdk_sideband(server: EmbeddedServer, live_id: str) -> list[dict]:
    async def main() -> list[dict]:
        client = openai.AsyncOpenAI(api_key=server.api_key, base_url=f"{server.base_url}/v1",
                                    websocket_base_url=f"{server.ws_url}/v1")
        try:
            await client.live.sessions.accept(live_id, session={"model": "gpt-live-1"})
            events = []
            async with client.live.sideband.connect(session_id=live_id, max_retries=0) as conn:
                while not events or events[-1]["type"] != "session.closed":
                    raw = await conn.recv_bytes()
                    assert conn.parse_event(raw).type == json.loads(raw)["type"]
                    events.append(json.loads(raw))
            return events
        finally:
            await client.close()

    return asyncio.run(main())


async def test_the_official_sdk_accepts_and_attaches_on_the_live_surface(tmp_path: Path) -> None:
    write_pcap(tmp_path / "caller.pcap", caller_audio_packets())
    scenario = tmp_path / "caller.xml"
    scenario.write_text(uac_scenario("caller.pcap", hold_ms=3000))
    secret = new_webhook_secret()
    controller = SipController(secret, surface="live", attach_sessions=False)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(controller.serve)
            server = EmbeddedServer.with_generated_key(
                sip_port=0, webhook_url=url, webhook_secret=secret, sip_webhook_events=LIVE_EVENTS)
            await nursery.start(server.serve)
            sipp = trio.Event()

            async def caller() -> None:
                await trio.run_process(sipp_command(server.sip.port, scenario, calls=1, rate=1),
                                       cwd=tmp_path, check=True, capture_stdout=True, capture_stderr=True)
                sipp.set()

            nursery.start_soon(caller)
            if not controller.calls:
                await controller.call_announced.wait()
            (live_id,) = controller.calls
            events = await trio.to_thread.run_sync(sdk_sideband, server, live_id)
            await sipp.wait()
            nursery.cancel_scope.cancel()
    kinds = [e["type"] for e in events]
    assert kinds[0] == "session.started" and events[0]["session"]["id"] == live_id
    assert "session.input_transcript.delta" in kinds and "session.output_audio.delta" in kinds
    assert events[-1]["reason"] == "remote_hangup"
    for event in events:
        SERVER_EVENT.validate_python(event)
