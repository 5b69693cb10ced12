"""webrtc-scaling: connect time and CPU per session-second of N concurrent WebRTC sessions.

The embedded server runs in its own process (``python -m standin --webrtc on``);
this process runs one fleet (``open_fleet(url, webrtc=True)``, ephemeral keys) with N WebRTC
sessions. For each N:

1. all N sessions are added at once; *connect* is the time from ``add_session`` to
   ``connected`` (key mint + offer + answer + ICE/DTLS/SCTP + ``session.created``), and
   *setup* the actor's own ``webrtc.connected`` figure (offer to open data channel);
2. after a 1 s warm-up, a measurement window of ``--duration`` seconds in which every session
   does audio turns back to back: 1 s of tone then 1 s of silence on its microphone track
   (server VAD makes the turn), the model answers with paced audio on the server's track;
   a turn ends at ``output_audio_buffer.stopped`` (``--idle``: no turns, sessions stay
   connected and silent);
3. figures over the window: CPU seconds per session-second of this process (client) and of
   the server process (``/proc``), the decoded audio each client received per second of wall
   time (``audio/s``: 1.00 with a continuously sending server, about 0.23 with the server's
   DTX, where audio flows only while the model answers), turn time (send to
   ``output_audio_buffer.stopped``; ideal about 2.2 s: 1 s tone, 0.5 s of VAD silence,
   0.5 s of answer, transport; real time held while it stays there), and load average.

``--client-dtx``: the clients' microphone tracks send nothing while nothing is appended
(``RtcOptions(dtx=True)``; the default is a continuous microphone, as a browser's);
``--server-dtx off``: the server sends silence frames while the model is quiet.

Usage::

    python bench/webrtc_scaling.py --sessions 1,5,10,20 --duration 10 --json-out webrtc.json
    python bench/webrtc_scaling.py --sessions 1,5,10,20 --client-dtx --idle
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402
import trio  # noqa: E402

import orchestrator.fleet as fleet_module  # noqa: E402
from actors.webrtc import RtcOptions, run_webrtc  # noqa: E402
from orchestrator.fleet import open_fleet  # noqa: E402

KEY = "sk-bench-" + os.urandom(12).hex()


def start_server(dtx: bool) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "standin", "--webrtc", "on", "--exit-on-stdin-eof",
         "--rtc-dtx", "on" if dtx else "off"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(C.ROOT),
        env={**os.environ, "RTFLEET_SERVER_API_KEY": KEY},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("the server did not start")
    return proc, json.loads(line)["url"]


async def measure(url: str, server_pid: int, n: int, duration: float, client_dtx: bool,
                  idle: bool) -> dict[str, Any]:
    turn_audio = [{"type": "input_audio_buffer.append", "audio": chunk}
                  for chunk in C.pcm_chunks_b64(tone_ms=1000, silence_ms=1000)]
    # The fleet has no way to pass RtcOptions yet: swap the WebRTC actor for this run.
    fleet_module._webrtc_actor = lambda: functools.partial(run_webrtc, options=RtcOptions(dtx=client_dtx))
    async with open_fleet(url, api_key=KEY, webrtc=True,
                          config={"output_modalities": ["audio"]}) as fleet:
        setup_ms: list[float] = []
        info = fleet.subscribe(kinds=["info"], buffer=100_000)
        started = trio.current_time()
        connect_s: list[float] = []

        async def connect_one(sid: str) -> None:
            await fleet.wait_connected(sid)
            connect_s.append(trio.current_time() - started)

        sids = [await fleet.add_session(transport="webrtc") for _ in range(n)]
        with trio.fail_after(60 + 2 * n):
            async with trio.open_nursery() as nursery:
                for sid in sids:
                    nursery.start_soon(connect_one, sid)
        while True:
            try:
                event = info.receive_nowait()
            except trio.WouldBlock:
                break
            if event.payload.get("event") == "webrtc.connected":
                setup_ms.append(event.payload["connect_ms"])

        audio_bytes = dict.fromkeys(sids, 0)
        turns: list[float] = []
        counting = False
        events = fleet.subscribe(kinds=["audio", "server"], buffer=1_000_000)
        stopped = {sid: trio.Event() for sid in sids}

        async def consume() -> None:
            async for event in events:
                if event.kind == "audio":
                    if counting:
                        audio_bytes[event.session_id] += len(event.payload)
                elif event.type == "output_audio_buffer.stopped":
                    stopped[event.session_id].set()

        async def talk(sid: str, until: float) -> None:
            while trio.current_time() < until:
                stopped[sid] = trio.Event()
                t0 = trio.current_time()
                for event in turn_audio:
                    await fleet.send(sid, event)
                await stopped[sid].wait()
                if counting:
                    turns.append(trio.current_time() - t0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await trio.sleep(1.0)  # warm-up: every session connected and idle-streaming
            counting = True
            t0, cpu0, scpu0 = trio.current_time(), C.proc_cpu(), C.proc_cpu(server_pid)
            async with trio.open_nursery() as talkers:
                for sid in sids:
                    if not idle:
                        talkers.start_soon(talk, sid, t0 + duration)
                with trio.move_on_after(duration):
                    await trio.sleep_forever()
                window = trio.current_time() - t0
                cpu, scpu = C.proc_cpu() - cpu0, C.proc_cpu(server_pid) - scpu0
                counting = False
                talkers.cancel_scope.cancel()
            nursery.cancel_scope.cancel()
        statuses = fleet.statuses()
    return {
        "sessions": n,
        "connect_ms": {"p50": C.percentile(connect_s, 50) * 1000, "max": max(connect_s) * 1000},
        "setup_ms": {"p50": C.percentile(setup_ms, 50), "max": max(setup_ms, default=float("nan"))},
        "client_cpu_per_session_s": cpu / (n * window),
        "server_cpu_per_session_s": scpu / (n * window),
        "client_cores": cpu / window,
        "server_cores": scpu / window,
        "audio_s_per_session_s": min(audio_bytes.values()) / 48_000 / window,
        "turns": len(turns),
        "turn_s": {"p50": C.percentile(turns, 50), "max": max(turns, default=float("nan"))},
        "reconnects": sum(s.reconnects for s in statuses.values()),
        "loadavg": C.loadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,5,10,20")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json-out")
    parser.add_argument("--client-dtx", action="store_true",
                        help="clients send no audio packets while nothing is appended")
    parser.add_argument("--server-dtx", choices=("on", "off"), default="on",
                        help="the server sends no audio packets while the model is silent")
    parser.add_argument("--idle", action="store_true",
                        help="sessions stay connected but silent during the window (no turns)")
    args = parser.parse_args()
    counts = [int(x) for x in args.sessions.split(",")]
    proc, url = start_server(args.server_dtx == "on")
    results = []
    try:
        print(f"{'N':>3} {'connect p50/max ms':>19} {'setup p50 ms':>12} {'client cpu/s·s':>14} "
              f"{'server cpu/s·s':>14} {'cores c+s':>9} {'audio/s':>8} {'turn p50/max s':>15} "
              f"{'reconn':>6}", flush=True)
        for n in counts:
            r = trio.run(measure, url, proc.pid, n, args.duration, args.client_dtx, args.idle)
            results.append(r)
            print(f"{n:>3} {r['connect_ms']['p50']:>9.0f}/{r['connect_ms']['max']:<9.0f} "
                  f"{r['setup_ms']['p50']:>12.0f} {r['client_cpu_per_session_s']:>14.3f} "
                  f"{r['server_cpu_per_session_s']:>14.3f} "
                  f"{r['client_cores'] + r['server_cores']:>9.2f} {r['audio_s_per_session_s']:>8.2f} "
                  f"{r['turn_s']['p50']:>7.2f}/{r['turn_s']['max']:<7.2f} {r['reconnects']:>6}",
                  flush=True)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    C.write_json(args.json_out, {"environment": C.environment(), "duration_s": args.duration,
                                 "client_dtx": args.client_dtx, "server_dtx": args.server_dtx,
                                 "idle": args.idle,
                                 "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
