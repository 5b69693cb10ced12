"""The fleet over WebRTC against the embedded server: text and audio turns, a peer drop in the
middle of a turn, and many concurrent calls (the server then runs in its own process).

Everything is on 127.0.0.1. Waits are on events and subscriptions; ``fail_after`` bounds are
safety nets, generous because WebRTC calls cost real CPU (see bench/webrtc_scaling.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import numpy as np
import pytest
import trio

pytest.importorskip("aiortc", reason="needs the webrtc extra: pip install -e .[webrtc]")

from actors.events import ConnectionState, EventKind
from orchestrator.fleet import Fleet, open_fleet, user_text
from standin import EmbeddedServer

S = ConnectionState
KEY = "sk-local-webrtc-test"
LOUD_RMS = 1000.0  # the model's tone is ~5,800 RMS; silence and DTX gaps are 0
AUDIO_TURN_ORDER = [
    "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
]


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt((x**2).mean())) if x.size else 0.0


@attrs.define
class TurnLog:
    """What one session saw during one turn."""

    types: list[str] = attrs.field(factory=list)
    events: list[Any] = attrs.field(factory=list)
    loud_ms: float = 0.0
    problems: list[Any] = attrs.field(factory=list)

    def finished(self, loud_ms: float) -> bool:
        return "output_audio_buffer.stopped" in self.types and self.loud_ms >= loud_ms


async def run_turn(fleet: Fleet, sids: list[str], start: Callable[[str], Awaitable[None]], *,
                   loud_ms: float = 200.0, timeout: float = 60.0) -> dict[str, TurnLog]:
    """Start a turn on every session; collect until each has heard its answer played out
    (``output_audio_buffer.stopped``) and ``loud_ms`` of loud decoded audio."""
    logs = {sid: TurnLog() for sid in sids}
    async with fleet.subscribe(sessions=sids, kinds=["server", "audio", "protocol_error", "dropped"],
                         buffer=1_000_000) as sub:
        for sid in sids:
            await start(sid)
        with trio.fail_after(timeout):
            async for event in sub:
                log = logs[event.session_id]
                if event.kind is EventKind.AUDIO:
                    if rms(event.payload) > LOUD_RMS:
                        log.loud_ms += len(event.payload) / 48
                elif event.kind is EventKind.SERVER:
                    log.types.append(event.type)
                    log.events.append(event)
                else:
                    log.problems.append(event)
                if all(log.finished(loud_ms) for log in logs.values()):
                    break
        assert sub.dropped == 0
    return logs


def check_answer(log: TurnLog) -> None:
    """One audio answer: protocol order, output_audio_buffer events, no audio on the channel."""
    types = log.types
    assert log.problems == []
    assert "response.output_audio.delta" not in types  # output audio is on the media track
    done = types.index("response.done")
    started = types.index("output_audio_buffer.started")
    assert types.index("response.created") < started < done < types.index("output_audio_buffer.stopped")
    response_id = log.events[done].payload["response"]["id"]
    assert log.events[done].payload["response"]["status"] == "completed"
    buffer_events = [e for e in log.events if e.type.startswith("output_audio_buffer.")]
    assert [e.type for e in buffer_events] == ["output_audio_buffer.started", "output_audio_buffer.stopped"]
    assert all(e.payload["response_id"] == response_id for e in buffer_events)


def text_turn(fleet: Fleet, text: str) -> Callable[[str], Awaitable[None]]:
    async def start(sid: str) -> None:
        await fleet.send(sid, user_text(f"{text} {sid}"))
        await fleet.send(sid, {"type": "response.create"})
    return start


def audio_turn_sender(fleet: Fleet, events: list[dict[str, Any]]) -> Callable[[str], Awaitable[None]]:
    async def start(sid: str) -> None:
        for event in events:
            await fleet.send(sid, event)
    return start


async def test_text_and_audio_turns_over_webrtc(audio_turn):
    server = EmbeddedServer(api_keys={KEY})
    async with open_fleet(server=server, api_key=KEY, webrtc=True, seed=1,
                          config={"output_modalities": ["audio"]}) as fleet:
        sids = [await fleet.add_session(transport="webrtc") for _ in range(2)]
        with trio.fail_after(30):
            for sid in sids:
                await fleet.wait_connected(sid)
        text = await run_turn(fleet, sids, text_turn(fleet, "hello from"))
        audio = await run_turn(fleet, sids, audio_turn_sender(fleet, audio_turn()))
        for sid in sids:
            check_answer(text[sid])
            transcript = next(e for e in text[sid].events if e.type == "response.output_audio_transcript.done")
            assert transcript.payload["transcript"] == f"You said: hello from {sid}"
            check_answer(audio[sid])
            vad = [t for t in audio[sid].types if t.startswith("input_audio_buffer.")]
            assert vad == AUDIO_TURN_ORDER  # the appended audio went up the track to the VAD
            assert audio[sid].loud_ms >= 200 and text[sid].loud_ms >= 200
            status = fleet.status(sid)
            assert status.state is S.CONNECTED and status.reconnects == 0
        calls = [r for r in server.connections if r.transport == "webrtc"]
        assert len(calls) == 2 and all(not r.closed.is_set() for r in calls)
        # appended audio never travels on the data channel
        assert all("input_audio_buffer.append" not in [e["type"] for e in r.received] for r in calls)


def _call_of(server: EmbeddedServer, fleet: Fleet, sid: str) -> Any:
    session_id = fleet.links[sid].core.session_id
    return next(c for c in server.calls.values() if c.session.session["id"] == session_id)


async def test_peer_drop_mid_turn_reconnects_with_a_fresh_key_and_restores_the_conversation():
    server = EmbeddedServer(api_keys={KEY})
    async with open_fleet(server=server, api_key=KEY, webrtc=True, seed=2,
                          config={"output_modalities": ["audio"]}) as fleet:
        sids = [await fleet.add_session(transport="webrtc") for _ in range(2)]
        everything = fleet.subscribe(sessions=sids, buffer=1_000_000)
        with trio.fail_after(30):
            for sid in sids:
                await fleet.wait_connected(sid)

        async def first(sid: str) -> None:
            await fleet.send(sid, user_text(f"first {sid}", item_id=f"item_first_{sid}"))
            await fleet.send(sid, {"type": "response.create"})

        for log in (await run_turn(fleet, sids, first)).values():
            check_answer(log)
        first_key = fleet.keys.current
        first_calls = {sid: _call_of(server, fleet, sid) for sid in sids}

        # Turn 2: each call is hung up by the server as its answer starts streaming, and the
        # cached client secret is expired server-side, so the reconnect needs a fresh key.
        dropped: set[str] = set()
        answered: set[str] = set()
        async with trio.open_nursery() as nursery:
            async with fleet.subscribe(sessions=sids, kinds=["server", "state"], buffer=100_000) as sub:
                for sid in sids:
                    await fleet.send(sid, user_text(f"second {sid}", item_id=f"item_second_{sid}"))
                    await fleet.send(sid, {"type": "response.create"})
                with trio.fail_after(60):
                    async for event in sub:
                        sid = event.session_id
                        if event.type == "response.output_audio_transcript.delta" and sid not in dropped:
                            dropped.add(sid)
                            server.secrets.expire_all(server.clock())
                            nursery.start_soon(first_calls[sid].hangup, "test: peer drop mid-turn")
                        elif (event.type == "output_audio_buffer.stopped" and sid in dropped
                              and fleet.status(sid).reconnects):
                            answered.add(sid)
                            if answered == set(sids):
                                break

        for sid in sids:
            status = fleet.status(sid)
            assert status.state is S.CONNECTED and status.reconnects == 1
            assert first_calls[sid].ended.is_set() and first_calls[sid].end_reason == "test: peer drop mid-turn"
            record = _call_of(server, fleet, sid).record
            assert record is not first_calls[sid].record
            # the conversation was replayed: turn 1 (user + assistant) once, turn 2 once, in order
            users = [i["id"] for i in record.items if i.get("role") == "user"]
            assert users == [f"item_first_{sid}", f"item_second_{sid}"]
            assistants = [i for i in record.items if i.get("role") == "assistant"]
            assert len(assistants) == 2 and all(i["status"] == "completed" for i in assistants)
            received = record.received
            replayed = [e for e in received if e["type"] == "conversation.item.create"]
            assert replayed[0]["item"]["id"] == f"item_first_{sid}" and replayed[0]["previous_item_id"] == "root"
            assert replayed[1]["item"]["role"] == "assistant"  # turn 1's answer, as text
            assert [e["type"] for e in received].count("response.create") == 1  # re-issued once
            answer = record.responses[-1]
            assert answer["status"] == "completed"
            assert answer["output"][0]["content"][0]["transcript"] == f"You said: second {sid}"
            counters = fleet.links[sid].core.counters
            assert counters.failed == 0 and counters.reissued_responses == 1
        # a fresh key: the stale one was refused, new ones were minted for the reconnects
        assert server.stats.auth_failures >= 1
        assert fleet.keys.current is not first_key and fleet.keys.mints >= 2
        # no lost client events, no gap in any session's event stream
        seen: dict[str, list[int]] = {}
        sent: dict[str, list[str]] = {}
        while True:
            try:
                event = everything.receive_nowait()
            except trio.WouldBlock:
                break
            seen.setdefault(event.session_id, []).append(event.seq)
            assert event.kind is not EventKind.DROPPED
            if event.kind is EventKind.SENT and event.type == "conversation.item.create":
                sent.setdefault(event.session_id, []).append(event.payload["item"]["id"])
        assert everything.dropped == 0
        for sid in sids:
            assert seen[sid] == list(range(seen[sid][0], seen[sid][0] + len(seen[sid])))
            assert sent[sid][:2] == [f"item_first_{sid}", f"item_second_{sid}"]


async def test_stop_and_chaos_abort_of_a_webrtc_session():
    server = EmbeddedServer(api_keys={KEY})
    async with open_fleet(server=server, api_key=KEY, webrtc=True, seed=5) as fleet:
        sid = await fleet.add_session(transport="webrtc")
        with trio.fail_after(30):
            await fleet.wait_connected(sid)
            first = _call_of(server, fleet, sid)
            async with fleet.subscribe(sessions=[sid], kinds=["state"]) as states:
                fleet.links[sid].abort_connection()  # chaos: the call is dropped, then restored
                changes = [(await states.receive()).payload["to"] for _ in range(2)]
        assert changes == ["reconnecting", "connected"]
        status = fleet.status(sid)
        assert status.reconnects == 1 and "aborted by fault injection" in status.last_exit.detail
        second = _call_of(server, fleet, sid)
        assert second is not first
        # (the first call normally ends at once on the server; if the client's close could not
        # finish in time under load, the server notices only when ICE consent fails, ~30 s)
        with trio.fail_after(10):
            status = await fleet.remove_session(sid)  # a clean stop, not a cancellation
            await second.ended.wait()
        assert status.state is S.CLOSED and status.last_exit.reason == "normal"
        assert second.record.closed_by == "client"


# -- many calls: the server in its own process -----------------------------------------------


@asynccontextmanager
async def server_process() -> AsyncIterator[tuple[str, int]]:
    """``python -m standin`` on port 0; yields (url, pid). Stops when stdin closes."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "standin", "--webrtc", "on", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "RTFLEET_SERVER_API_KEY": KEY},
    )
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some()
                if not chunk:
                    raise RuntimeError(f"the server exited before listening ({process.returncode})")
                line += chunk
        yield json.loads(line)["url"], process.pid
    finally:
        assert process.stdin is not None
        await process.stdin.aclose()
        with trio.move_on_after(15, shield=True) as waiting:
            await process.wait()
        if waiting.cancelled_caught:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()
    assert not waiting.cancelled_caught, "the server did not stop when its stdin closed"
    assert process.returncode == 0


def _cpu_seconds(pid: int | None = None) -> float:
    if pid is None:
        return time.process_time()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("n", [4, pytest.param(20, marks=pytest.mark.slow)])
async def test_concurrent_webrtc_sessions_complete_audio_turns(n, audio_turn):
    """n calls at once, the server in its own process (both sides of 20 calls do not fit one
    Python process on 2 cores: ~10-13% of a core per call per side)."""
    async with server_process() as (url, server_pid):
        async with open_fleet(url, api_key=KEY, webrtc=True, seed=3,
                              config={"output_modalities": ["audio"]}) as fleet:
            t0 = trio.current_time()
            sids = [await fleet.add_session(transport="webrtc") for _ in range(n)]
            with trio.fail_after(30 + 3 * n):
                for sid in sids:
                    await fleet.wait_connected(sid)
            connected_s = trio.current_time() - t0
            cpu0, server_cpu0, t1 = _cpu_seconds(), _cpu_seconds(server_pid), trio.current_time()
            logs = await run_turn(fleet, sids, audio_turn_sender(fleet, audio_turn()),
                                  timeout=60 + 6 * n)
            turn_s = trio.current_time() - t1
            client_cpu, server_cpu = _cpu_seconds() - cpu0, _cpu_seconds(server_pid) - server_cpu0
            for sid in sids:
                check_answer(logs[sid])
                assert [t for t in logs[sid].types if t.startswith("input_audio_buffer.")] == AUDIO_TURN_ORDER
                assert fleet.status(sid).reconnects == 0
    print(f"\n{n} WebRTC sessions: all connected in {connected_s:.2f}s; audio turns done in "
          f"{turn_s:.2f}s (1.5s of speech each); CPU client {client_cpu / turn_s:.2f} cores, "
          f"server {server_cpu / turn_s:.2f} cores; load {os.getloadavg()[0]:.1f}")
