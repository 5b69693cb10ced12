"""The SIP actor as the caller against ``sipp -sn uas -rtp_echo`` (Debian ``sip-tester``), bridged
to a realtime session on the embedded server, over loopback.

SIPp answers and echoes every RTP packet back: the actor measures, per packet, how long its
own audio takes to come back (``PhoneCall.echo_rtt``) and the lateness of its 20 ms pacer.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.credentials import Secret
from actors.events import ConnectionState, EventKind, Transport
from actors.link import SessionLink
from actors.proto.client import ClientCore
from actors.proto.session import SessionConfig
from actors.sip import SipOptions, run_sip
from actors.sip_phone import SipPhone
from actors.websocket import ConnectParams
from standin import EmbeddedServer

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed")
LOOPBACK = "127.0.0.1"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self._waiters: list[tuple[Any, trio.Event]] = []

    def publish(self, event: Any) -> None:
        self.events.append(event)
        for predicate, done in list(self._waiters):
            if predicate(event):
                done.set()
                self._waiters.remove((predicate, done))

    async def wait_for(self, predicate: Any) -> None:
        if any(predicate(e) for e in self.events):
            return
        done = trio.Event()
        self._waiters.append((predicate, done))
        await done.wait()

    def server(self, kind: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.events if e.kind is EventKind.SERVER and e.payload["type"] == kind]


def server_event(kind: str) -> Any:
    return lambda e: e.kind is EventKind.SERVER and e.payload["type"] == kind


async def _sipp_uas(tmp_path: Path) -> tuple[trio.Process, int]:
    port, media = free_udp_port(), free_udp_port()
    err = open(tmp_path / "sipp.err", "wb")
    process = await trio.lowlevel.open_process(
        ["sipp", "-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-mp", str(media), "-rtp_echo",
         "-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    return process, port


async def _call(tmp_path: Path, config: dict[str, Any], turn: Any) -> tuple[Any, Recorder, int, Any]:
    process, sipp_port = await _sipp_uas(tmp_path)
    server = EmbeddedServer.with_generated_key()
    recorder = Recorder()
    try:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(server.serve)
            phone = SipPhone()
            await nursery.start(phone.run)
            link = SessionLink("call-1", Transport.SIP, ClientCore(SessionConfig.from_dict(config)),
                               recorder.publish)
            params = ConnectParams(url=url, credential=Secret(server.api_key, kind="api_key"))
            options = SipOptions(phone, target=f"sip:service@{LOOPBACK}:{sipp_port}")
            exits: list[Any] = []
            actor_done = trio.Event()

            async def actor(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                exits.append(await run_sip(link, params, options=options, task_status=task_status))
                actor_done.set()

            # no sleep for sipp to bind: INVITE retransmission (Timer A) covers a late start
            await nursery.start(actor)
            (call,) = list(phone.calls.values())
            await turn(link, recorder, call)
            link.stop_requested.set()
            link.wake_writer()
            with trio.fail_after(10):
                await actor_done.wait()
                code = await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return exits[0], recorder, code, call


async def test_call_sipp_echo_plays_the_answer_and_hears_it_back(tmp_path: Path) -> None:
    config = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}

    async def turn(link: SessionLink, recorder: Recorder, call: Any) -> None:
        link.send_nowait({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}})
        link.send_nowait({"type": "response.create"})
        await recorder.wait_for(server_event("response.done"))
        # wait, packet by packet, until every frame sent has come back (but the last)
        while True:
            activity = call.activity
            if not (call.queued_frames or len(call.echo_rtt.samples) < call.rtp_sent - 1):
                break
            await activity.wait()

    with trio.fail_after(30):
        exit, recorder, code, call = await _call(tmp_path, config, turn)
    assert code == 0, (tmp_path / "sipp.err").read_text(errors="replace")
    assert exit.reason.value == "normal"
    assert call.audio_frames_sent == 15  # "You said: hi": 3 words, 100 ms of tone each
    assert len(call.echo_rtt.samples) >= call.audio_frames_sent
    p50, p99 = call.echo_rtt.percentile(50), call.echo_rtt.percentile(99)
    print(f"echo round trip p50 {p50 * 1000:.2f} ms p99 {p99 * 1000:.2f} ms; pacer lateness p99 "
          f"{call.lateness.percentile(99) * 1000:.2f} ms over {len(call.lateness.samples)} frames")
    assert p99 < 0.1
    states = [e.payload["to"] for e in recorder.events if e.kind is EventKind.STATE]
    infos = [e.payload.get("event") for e in recorder.events if e.kind is EventKind.INFO]
    assert "sip.up" in infos and "sip.dialing" in infos
    assert ConnectionState.RECONNECTING.value not in states
