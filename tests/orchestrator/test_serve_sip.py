"""``rtfleet serve --sip-port``: SIPp places calls into a ``rtfleet serve`` subprocess, over loopback.

* ``--sip-accept auto`` with ``--sip-session``: every call is answered at once, with RTP both ways.
* ``--sip-accept URL``: each INVITE is announced to the test's webhook (signed
  ``realtime.call.incoming``, verified here with the ``--webhook-secret``); the test then
  decides over REST: the first call is accepted with a session config and its sideband
  (``/v1/realtime?call_id=``) shows that session and the answer to the caller's spoken turn,
  the second is rejected with 486, which SIPp sees.
* Bad SIP options exit 2 with one line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from standin.front.lean import serve_front
from standin.keys.webhooks import new_webhook_secret, verify
from standin.sessions.sip_testing import caller_audio_packets, sipp_command, uac_scenario, write_pcap

from tests.orchestrator.serve_process import rtfleet_serve

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed")

REJECTED_CALLER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="a caller the application turns down">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="486"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
</scenario>
"""


async def _sipp(command: list[str], cwd: Path) -> None:
    result = await trio.run_process(command, cwd=cwd, check=False, capture_stdout=True, capture_stderr=True)
    errors = cwd / "sipp_errors.log"
    detail = result.stderr.decode(errors="replace")[-2000:]
    if errors.exists():
        detail += errors.read_text(errors="replace")[-2000:]
    assert result.returncode == 0, detail


def _caller(directory: Path, hold_ms: int) -> Path:
    write_pcap(directory / "caller.pcap", caller_audio_packets())
    scenario = directory / "caller.xml"
    scenario.write_text(uac_scenario("caller.pcap", hold_ms=hold_ms))
    return scenario


@needs_sipp
async def test_auto_accept_answers_every_sipp_call(tmp_path: Path) -> None:
    scenario = _caller(tmp_path, hold_ms=1500)
    session = json.dumps({"instructions": "Answer the phone.", "audio": {"output": {"voice": "marin"}}})
    with trio.fail_after(90):
        async with rtfleet_serve("--sip-port", "0", "--sip-accept", "auto", "--sip-session", session) as serve:
            assert serve.sip_port and "every call accepted" in serve.banner
            await _sipp(sipp_command(serve.sip_port, scenario, calls=3, rate=10), tmp_path)


@needs_sipp
async def test_auto_accepted_calls_get_the_configured_session(tmp_path: Path) -> None:
    """What ``--sip-session`` sets, seen inside the server (``EmbeddedServer(sip_session=)``)."""
    from standin import EmbeddedServer

    scenario = _caller(tmp_path, hold_ms=1500)
    server = EmbeddedServer.with_generated_key(sip_port=0, sip_session={
        "type": "realtime", "instructions": "Answer the phone.", "audio": {"output": {"voice": "marin"}}})
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            await _sipp(sipp_command(server.sip.port, scenario, calls=2, rate=10), tmp_path)
            # SIPp exits once its BYE is answered, maybe before the server's call task has
            # finished the call: stopping the server finishes every call it has
            nursery.cancel_scope.cancel()
    calls = list(server.sip.finished)
    assert len(calls) == 2
    for call in calls:
        assert call.session.session["instructions"] == "Answer the phone."
        assert call.session.session["audio"]["output"]["voice"] == "marin"
        assert [item["role"] for item in call.session.items] == ["user", "assistant"]


class Webhook:
    """The application's webhook: verifies each announcement and hands the call id over."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.send, self.receive = trio.open_memory_channel[str](16)
        self.refused = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        try:
            event = verify(self.secret, body, headers)
        except Exception:  # a forged or unsigned announcement
            self.refused += 1
            status = 400
        else:
            assert event["type"] in ("realtime.call.incoming", "live.transport.incoming")
            data = event["data"]  # realtime.call.incoming, or GPT-Live's live.transport.incoming
            self.send.send_nowait(data.get("call_id") or data["session_id"])
            status = 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@needs_sipp
async def test_a_webhook_announces_calls_and_the_rest_api_decides(tmp_path: Path, nursery) -> None:
    secret = new_webhook_secret()
    webhook = Webhook(secret)
    hook_url = await nursery.start(serve_front, webhook, "127.0.0.1", 0)
    accepted = _caller(tmp_path, hold_ms=4000)
    rejected = tmp_path / "rejected.xml"
    rejected.write_text(REJECTED_CALLER)
    with trio.fail_after(90):
        async with rtfleet_serve("--sip-port", "0", "--sip-accept", f"{hook_url}/hook",
                                 "--webhook-secret", secret) as serve:
            assert f"calls announced to {hook_url}/hook" in serve.banner
            auth = {"Authorization": f"Bearer {serve.key}"}
            async with trio.open_nursery() as calls, httpx.AsyncClient(base_url=serve.url) as api:
                calls.start_soon(_sipp, sipp_command(serve.sip_port, accepted, calls=1, rate=1), tmp_path)
                call_id = await webhook.receive.receive()
                answer = await api.post(f"/v1/realtime/calls/{call_id}/accept", headers=auth, json={
                    "type": "realtime", "instructions": "You are the front desk."})
                assert answer.status_code == 200, answer.text
                ws = f"{serve.url.replace('http', 'ws', 1)}/v1/realtime?call_id={call_id}"
                async with open_websocket_url(ws, extra_headers=[("Authorization", f"Bearer {serve.key}")]) as sideband:
                    first = json.loads(await sideband.get_message())
                    assert first["type"] == "session.created"
                    assert first["session"]["instructions"] == "You are the front desk."
                    # the caller's tone is a spoken turn: answered with audio on the call
                    while True:
                        event = json.loads(await sideband.get_message())
                        if event["type"] == "response.done":
                            break
                    assert event["response"]["status"] == "completed"
                    assert event["response"]["output"][0]["content"][0]["type"] == "output_audio"

            async with trio.open_nursery() as caller, httpx.AsyncClient(base_url=serve.url) as api:
                caller.start_soon(_sipp, sipp_command(serve.sip_port, rejected, calls=1, rate=1), tmp_path)
                call_id = await webhook.receive.receive()
                answer = await api.post(f"/v1/realtime/calls/{call_id}/reject", headers=auth,
                                        json={"status_code": 486})
                assert answer.status_code == 200
                again = await api.post(f"/v1/realtime/calls/{call_id}/accept", headers=auth,
                                       json={"type": "realtime"})
                assert again.status_code == 404
    assert webhook.refused == 0


async def test_a_webhook_on_the_live_surface_and_a_live_sideband(tmp_path: Path, nursery) -> None:
    """``--sip-webhook live``: calls are announced as GPT-Live's ``live.transport.incoming``,
    accepted at ``/v1/live/sessions/{id}/accept`` and driven through ``/attach``."""
    secret = new_webhook_secret()
    webhook = Webhook(secret)
    hook_url = await nursery.start(serve_front, webhook, "127.0.0.1", 0)
    caller = _caller(tmp_path, hold_ms=4000)
    with trio.fail_after(90):
        async with rtfleet_serve("--sip-port", "0", "--sip-accept", f"{hook_url}/hook",
                                 "--sip-webhook", "live", "--webhook-secret", secret) as serve:
            auth = {"Authorization": f"Bearer {serve.key}"}
            async with trio.open_nursery() as calls, httpx.AsyncClient(base_url=serve.url) as api:
                calls.start_soon(_sipp, sipp_command(serve.sip_port, caller, calls=1, rate=1), tmp_path)
                live_id = await webhook.receive.receive()
                assert live_id.startswith("live_")
                answer = await api.post(f"/v1/live/sessions/{live_id}/accept", headers=auth, json={
                    "session": {"model": "gpt-live-1", "instructions": "You are the front desk."}})
                assert answer.status_code == 200, answer.text
                ws = f"{serve.url.replace('http', 'ws', 1)}/v1/live/sessions/{live_id}/attach"
                async with open_websocket_url(ws, extra_headers=[("Authorization", f"Bearer {serve.key}")]) as sideband:
                    first = json.loads(await sideband.get_message())
                    assert first["type"] == "session.started"
                    assert first["session"]["instructions"] == "You are the front desk."
                    said = ""
                    while "You said: audio of" not in said:  # the caller's tone, answered aloud
                        event = json.loads(await sideband.get_message())
                        if event["type"] == "session.output_transcript.delta":
                            said += event["delta"]
    assert webhook.refused == 0


@pytest.mark.parametrize("args, message", [
    (["--sip-accept", "auto", "--sip-session", "{}"], "--sip-session needs --sip-port"),
    (["--sip-port", "0", "--sip-accept", "ftp://x"], "--sip-accept takes 'auto' or a webhook URL"),
    (["--sip-port", "0", "--sip-session", "{\"voice\": "], "not valid JSON"),
    (["--sip-port", "0", "--sip-session", "{\"audio\": {\"output\": {\"voice\": 3}}}"],
     "session.audio.output.voice"),
    (["--sip-port", "0", "--sip-accept", "http://127.0.0.1:9/h", "--webhook-secret", "nope"], "whsec_"),
    (["--sip-port", "0", "--sip-accept", "http://127.0.0.1:9/h", "--sip-webhook", "x"],
     "--sip-webhook takes realtime, live or both"),
    (["--sip-port", "0", "--sip-webhook", "live"], "--sip-webhook needs --sip-accept URL"),
    (["--sip-port", "70000"], "--sip-port must be 0..65535"),
    (["--sip-port", "0", "--host", "0.0.0.0"], "--sip-port needs a specific --host address"),
    (["--sip-port", "0", "--host", "localhost"], "--sip-port needs --host to be an IP address"),
])
def test_bad_sip_options_exit_2_with_one_line(args, message):
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "serve", "--port", "0", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", ["http", "sip"])
def test_a_port_in_use_exits_3_with_one_line(kind):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "http" else socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == "http":
            taken.listen()
        port = str(taken.getsockname()[1])
        args = ["--port", port] if kind == "http" else ["--port", "0", "--sip-port", port]
        proc = subprocess.run([sys.executable, "-m", "orchestrator", "serve", *args],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "cannot listen on" in proc.stderr and "in use" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    if kind == "sip":
        assert f"SIP: udp {port}" in proc.stderr


async def test_a_generated_webhook_secret_goes_to_a_private_file_removed_at_exit() -> None:
    import os
    import re
    import stat

    with trio.fail_after(60):
        async with rtfleet_serve("--sip-port", "0", "--sip-accept", "http://127.0.0.1:9/hook") as serve:
            path = re.search(r"webhook key in (\S+)", serve.banner).group(1)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            secret = Path(path).read_text().strip()
            assert secret.startswith("whsec_") and secret not in serve.banner
    assert not os.path.exists(path)
