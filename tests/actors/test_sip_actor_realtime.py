"""The SIP actor's realtime side under stress, over loopback: a realtime socket lost in the middle
of a call (the call is held, the session reconnects, with a fresh credential), and barge-in
(the phone speaks over the answer: playout stops, ``conversation.item.truncate``).

Waits are on events (session events, RTP frames as they arrive); ``trio.fail_after`` is only a
safety net.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import trio

from actors.credentials import Secret
from actors.events import ConnectionState, EventKind, Transport
from actors.link import SessionLink
from actors.proto.audio import g711_decode, g711_encode
from actors.proto.client import ClientCore
from actors.proto.session import SessionConfig
from actors.proto.rtp.stream import FRAME
from actors.sip import SipOptions, plan_call, run_sip
from actors.sip_phone import SipPhone
from actors.websocket import ConnectParams
from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer

LOOPBACK = "127.0.0.1"
needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class Recorder:
    """Records a link's events (chained in front of the link's own publish)."""

    def __init__(self, forward: Callable[[Any], None] | None = None) -> None:
        self.events: list[Any] = []
        self.forward = forward
        self._waiters: list[tuple[Any, trio.Event]] = []

    def publish(self, event: Any) -> None:
        self.events.append(event)
        if self.forward is not None:
            self.forward(event)
        for predicate, done in list(self._waiters):
            if predicate(event):
                done.set()
                self._waiters.remove((predicate, done))

    async def wait_for(self, predicate: Any, *, after: int = 0) -> Any:
        """The first event from index ``after`` on that matches (waits for it)."""
        for event in self.events[after:]:
            if predicate(event):
                return event
        done = trio.Event()
        found: list[Any] = []

        def matcher(event: Any) -> bool:
            if predicate(event):
                found.append(event)
                return True
            return False

        self._waiters.append((matcher, done))
        await done.wait()
        return found[0]

    def server(self, kind: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.events if e.kind is EventKind.SERVER and e.payload["type"] == kind]

    def sent(self, kind: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.events if e.kind is EventKind.SENT and e.payload["type"] == kind]

    def states(self) -> list[str]:
        return [e.payload["to"] for e in self.events if e.kind is EventKind.STATE]


def server_event(kind: str) -> Any:
    return lambda e: e.kind is EventKind.SERVER and e.payload["type"] == kind


def state_event(state: ConnectionState) -> Any:
    return lambda e: e.kind is EventKind.STATE and e.payload["to"] == state.value


def loud_append(e: Any) -> bool:
    """An ``input_audio_buffer.append`` (PCM16 24 kHz) carrying sound, not silence."""
    if e.kind is not EventKind.SENT or e.payload["type"] != "input_audio_buffer.append":
        return False
    pcm = np.frombuffer(base64.b64decode(e.payload["audio"]), dtype="<i2").astype(np.float64)
    return pcm.size > 0 and float(np.sqrt(np.mean(pcm * pcm))) > 1000.0


async def _sipp_uas(tmp_path: Path) -> tuple[trio.Process, int]:
    port, media = free_udp_port(), free_udp_port()
    err = open(tmp_path / "sipp.err", "wb")
    process = await trio.lowlevel.open_process(
        ["sipp", "-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-mp", str(media), "-rtp_echo",
         "-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    return process, port


# -- 1. a lost realtime socket: reconnect, the call held ----------------------------------


async def _reconnect_during_call(tmp_path: Path, *, expire_keys: bool) -> None:
    """A fleet session (ephemeral keys) bridges a call to ``sipp -rtp_echo``; after the first
    answer the realtime socket is aborted (and, with ``expire_keys``, every ephemeral key expires
    server-side first): the session must go reconnecting -> connected with the call held, RTP
    flowing both ways, and answer a second turn."""
    process, sipp_port = await _sipp_uas(tmp_path)
    config = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    try:
        async with open_fleet(policy="transient") as fleet:
            phone = SipPhone()
            await fleet.nursery.start(phone.run)
            minted: list[Secret] = []

            async def credentials(*, force: bool = False) -> Secret:
                secret = await fleet.keys.credential(force=force)
                minted.append(secret)
                return secret

            plan_call("call-1", SipOptions(phone, target=f"sip:service@{LOOPBACK}:{sipp_port}",
                                           credentials=credentials))
            # echo_audio: appends are published as ``sent`` events (phone -> realtime is visible)
            sid = await fleet.add_session("call-1", transport="sip", policy="transient",
                                          config=config, echo_audio=True)
            link = fleet.links[sid]
            recorder = Recorder(link.publish)
            link.publish = recorder.publish  # before the actor's first step: it taps this one
            await fleet.wait_connected(sid)
            (call,) = list(phone.calls.values())
            first_key = fleet.keys.current

            # turn 1
            fleet.send_nowait(sid, user_text("hi"))
            fleet.send_nowait(sid, {"type": "response.create"})
            await recorder.wait_for(server_event("response.done"))
            await recorder.wait_for(loud_append)  # the answer went out by RTP and came back
            assert call.audio_frames_sent > 0

            # drop the realtime socket (no close frame)
            if expire_keys:
                assert fleet.server.secrets.expire_all(fleet.server.clock()) >= 1
                fleet.keys.invalidate()
            mark = len(recorder.events)
            sent_before, received_before, frames_before = call.rtp_sent, call.rtp_received, \
                call.audio_frames_sent
            link.abort_connection()
            await recorder.wait_for(state_event(ConnectionState.RECONNECTING), after=mark)
            # connected again, or (the bug) the call dropped and a new one is dialled
            back = await recorder.wait_for(
                lambda e: state_event(ConnectionState.CONNECTED)(e)
                or e.kind is EventKind.INFO and e.payload.get("event") == "sip.dialing", after=mark)
            assert back.kind is EventKind.STATE, f"the call was dropped and redialled: {call.end_reason}"
            assert recorder.states()[-2:] == ["reconnecting", "connected"]
            assert not call.ended.is_set() and call.state == "up"
            assert phone.calls.get(call.sip_call_id) is call  # no BYE either way

            # turn 2 on the new socket
            mark = len(recorder.events)
            fleet.send_nowait(sid, user_text("again"))
            fleet.send_nowait(sid, {"type": "response.create"})
            done = await recorder.wait_for(server_event("response.done"), after=mark)
            assert done.payload["response"]["status"] == "completed"
            # the second answer is played to the phone, echoed by sipp, and heard again
            await recorder.wait_for(loud_append, after=mark)
            assert call.audio_frames_sent > frames_before
            assert call.rtp_sent > sent_before and call.rtp_received > received_before
            assert not call.ended.is_set()
            if expire_keys:
                # the reconnect used a freshly minted key, not the expired original
                assert minted and minted[-1] is not first_key
                assert minted[-1].reveal() != first_key.reveal()

            status = await fleet.remove_session(sid)
            assert status.last_exit is not None and status.last_exit.reason.value == "normal", status
            with trio.fail_after(10):
                await call.ended.wait()  # our BYE, answered
                code = await process.wait()
            assert call.end_reason.endswith("(local)") or "bye" in call.end_reason, call.end_reason
            assert code == 0, (tmp_path / "sipp.err").read_text(errors="replace")
            fleet.nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@needs_sipp
async def test_lost_realtime_socket_reconnects_with_the_call_held(tmp_path: Path) -> None:
    with trio.fail_after(45):
        await _reconnect_during_call(tmp_path, expire_keys=False)


@needs_sipp
async def test_reconnect_after_key_expiry_uses_a_fresh_credential(tmp_path: Path) -> None:
    with trio.fail_after(45):
        await _reconnect_during_call(tmp_path, expire_keys=True)


# -- 2. barge-in ---------------------------------------------------------------------------


def _is_silence(frame: bytes, codec: int) -> bool:
    pcm = np.frombuffer(g711_decode(codec, frame), dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(pcm * pcm))) < 200.0


def _tone_frames(codec: int, ms: int, hz: float = 440.0, amplitude: float = 0.5) -> list[bytes]:
    n = np.arange(8000 * ms // 1000)
    pcm = np.round(amplitude * 32767 * np.sin(2 * np.pi * hz * n / 8000)).astype("<i2").tobytes()
    g711 = g711_encode(codec, pcm)
    return [g711[i:i + FRAME] for i in range(0, len(g711) - len(g711) % FRAME, FRAME)]


async def test_barge_in_stops_playout_and_truncates_at_the_played_ms() -> None:
    """The far end is a second :class:`SipPhone` (UAS) driven by the test, so nothing echoes:
    it hears the answer, then speaks (a tone) over it. Server VAD (interrupt_response, no
    auto-response) raises ``speech_started``; the actor must drop its queued audio and send
    ``conversation.item.truncate`` with the milliseconds it actually played."""
    config = {"type": "realtime", "audio": {"input": {"turn_detection": {
        "type": "server_vad", "interrupt_response": True, "create_response": False,
        "silence_duration_ms": 200}}}}
    server = EmbeddedServer.with_generated_key()
    recorder = Recorder()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(server.serve)
            caller, far_end = SipPhone(), SipPhone()
            await nursery.start(caller.run)
            far_port = await nursery.start(far_end.run)
            link = SessionLink("call-1", Transport.SIP, ClientCore(SessionConfig.from_dict(config)),
                               recorder.publish)
            params = ConnectParams(url=url, credential=Secret(server.api_key, kind="api_key"))
            options = SipOptions(caller, target=f"sip:far@{LOOPBACK}:{far_port}")
            exits: list[Any] = []
            actor_done = trio.Event()

            async def actor(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                exits.append(await run_sip(link, params, options=options, task_status=task_status))
                actor_done.set()

            answered: list[Any] = []

            async def answer() -> None:
                incoming = await far_end.next_incoming()
                far_end.answer(incoming)
                answered.append(incoming)

            nursery.start_soon(answer)
            await nursery.start(actor)  # the call is up and the realtime session ready
            (peer,) = answered
            (call,) = list(caller.calls.values())
            assert peer.frames is not None

            # a long answer: "You said: …" one word (100 ms of tone) a word, paced in real time
            words = " ".join(f"w{i}" for i in range(40))
            link.send_nowait({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": words}]}})
            link.send_nowait({"type": "response.create"})

            # the far end hears 300 ms of the answer, then speaks over it
            heard = 0
            async for frame in peer.frames:
                if not _is_silence(frame, peer.codec):
                    heard += 1
                    if heard == 15:
                        break
            assert not recorder.server("response.output_audio.done")  # still being played out
            peer.play(_tone_frames(peer.codec, 400))

            # the truncate answer comes well before the end of the far end's turn (400 ms of
            # tone, then 200 ms of silence): either one stops the wait
            truncated = await recorder.wait_for(
                lambda e: server_event("conversation.item.truncated")(e)
                or server_event("input_audio_buffer.speech_stopped")(e))
            assert recorder.server("input_audio_buffer.speech_started")
            assert truncated.payload["type"] == "conversation.item.truncated", "no truncate sent"
            (truncate,) = recorder.sent("conversation.item.truncate")
            played_at_truncate = call.audio_frames_sent
            assert call.queued_frames == 0  # the queued answer was dropped
            (delta_item,) = {d["item_id"] for d in recorder.server("response.output_audio.delta")}
            assert truncate["item_id"] == delta_item and truncate["content_index"] == 0
            end_ms = truncate["audio_end_ms"]
            # plausible: at least what the far end heard, at most what the actor sent by RTP
            # (every frame of this call's answer, 20 ms each), and well short of the 4 s answer
            assert 15 * 20 <= end_ms <= played_at_truncate * 20 < 4000
            assert truncated.payload["audio_end_ms"] == end_ms  # the server accepted it
            assert not recorder.server("error"), recorder.server("error")
            done = await recorder.wait_for(server_event("response.done"))
            assert done.payload["response"]["status"] == "cancelled"
            assert [e.payload.get("event") for e in recorder.events
                    if e.kind is EventKind.INFO and e.payload.get("event") == "sip.truncate_failed"] == []

            # RTP out is flushed: from here the far end hears silence only (skip the frames
            # received before now, allow the jitter buffer's worth in flight), no audio is sent
            while True:
                try:
                    peer.frames.receive_nowait()
                except trio.WouldBlock:
                    break
            loud_after = 0
            count = 0
            async for frame in peer.frames:
                count += 1
                if not _is_silence(frame, peer.codec):
                    loud_after += 1
                if count == 25:  # 500 ms of the far end's stream
                    break
            assert call.audio_frames_sent == played_at_truncate
            assert loud_after <= 5, loud_after
            assert not call.ended.is_set()

            link.stop_requested.set()
            link.wake_writer()
            await actor_done.wait()
            await peer.ended.wait()  # the actor hung up: BYE reached the far end
            nursery.cancel_scope.cancel()
    assert exits[0].reason.value in ("normal", "closed"), exits[0]


async def test_barge_in_between_two_deltas_still_truncates() -> None:
    """The answer streams in real time, so the playout queue is empty for a moment after each
    delta has been played; speech then (before ``response.output_audio.done``) is still a
    barge-in on an unfinished item and must truncate at what was played."""
    from types import SimpleNamespace

    from actors.proto.rtp.stream import RtpStream
    from actors.sip import _Bridge
    from actors.sip_phone import PhoneCall

    sent: list[dict[str, Any]] = []

    class RecordingLink(SessionLink):  # no connection: record what the bridge sends
        def send_nowait(self, event: dict[str, Any]) -> None:
            sent.append(event)

    link = RecordingLink("call-1", Transport.SIP, ClientCore(SessionConfig.from_dict({"type": "realtime"})),
                         lambda event: None)
    call = PhoneCall(None, "x", "uac")  # type: ignore[arg-type]
    call.media = SimpleNamespace(codec=SimpleNamespace(payload_type=0))  # PCMU, no sockets
    call.stream = RtpStream.create(0)  # sans-I/O: the test plays the pacer's part
    clock = [0.0]
    call.stream.start(clock[0])
    bridge = _Bridge(link, call, SipOptions(None))  # type: ignore[arg-type]

    def delta(ms: int) -> dict[str, Any]:
        pcm = np.full(24 * ms, 8000, dtype="<i2").tobytes()
        return {"type": "response.output_audio.delta", "item_id": "item_a",
                "delta": base64.b64encode(pcm).decode()}

    def pace_out() -> None:  # the pacer's ticks, 20 ms a frame, until the queue is empty
        while call.queued_frames:
            assert len(call.stream.tick(clock[0])) == 1
            clock[0] += 0.020

    bridge.on_server(delta(100))
    pace_out()
    bridge.on_server(delta(100))
    pace_out()
    assert call.queued_frames == 0  # between two deltas: all received audio played
    bridge.on_server({"type": "input_audio_buffer.speech_started", "item_id": "item_u"})
    truncates = [e for e in sent if e["type"] == "conversation.item.truncate"]
    assert len(truncates) == 1, "no truncate between two deltas"
    assert truncates[0]["item_id"] == "item_a"
    assert 180 <= truncates[0]["audio_end_ms"] <= 200  # the resampler may keep a few samples

    # once the item's audio is done and fully played, speech is a new turn, not a barge-in
    sent.clear()
    bridge.on_server({**delta(100), "item_id": "item_b"})
    bridge.on_server({"type": "response.output_audio.done", "item_id": "item_b"})
    pace_out()
    bridge.on_server({"type": "input_audio_buffer.speech_started", "item_id": "item_v"})
    assert [e for e in sent if e["type"] == "conversation.item.truncate"] == []
