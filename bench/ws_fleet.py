"""ws-fleet: N WebSocket sessions streaming 24 kHz PCM16 in 20 ms chunks at real time.

Each session has an audio source on a fixed schedule (``sleep_until`` start + k * 20 ms, phases
spread over one frame): 1 s of tone, then 1 s of silence, repeated.  The embedded server (its own
process, ``bench/_server.py``) runs server VAD: each tone is a user turn and the server answers
with paced audio deltas (100 ms each, in real time), which every client receives and parses.

Clients, each in its own process so that its CPU and RSS are its own:

``rtfleet``     ``open_fleet(url, api_key=…, key_mode="direct")`` + ``fleet.send``; one broad
                subscriber counts the server events (as an application would consume them);
                the default WebSocket engine (``websockets`` sans-I/O under trio, actors/wsconn.py)
``rtfleet-clock`` the same fleet, streaming with ``fleet.stream_audio(sid, frames, on_frame=…)``:
                the process's one audio clock (actors/pacer.py) paces every session and
                writes each due frame itself (no task per session; what an embedder that
                streams audio writes)
``rtfleet-tws`` the same with ``connect_params={"engine": "trio-websocket"}`` (wsproto), the
                engine rtfleet used before: the alternative measured behind the same actor
``rtfleet-live`` the same fleet speaking GPT-Live (``add_session(protocol="live")``,
                ``/v1/live/sessions``): the Live vs Realtime row (``rtfleet/rtfleet-live``)
``bare``        trio-websocket, one nursery per session (reader + source), no orchestrator:
                the floor for this stack
``websockets``  asyncio + the ``websockets`` library, one task per session (the seed design;
                ``compression=None``, as trio-websocket offers no permessage-deflate either)
``openai``      the official ``openai`` SDK realtime client (asyncio; SDK defaults)

Figures per run (a measurement window after a warm-up, all sessions connected):
frame lateness (wake-up + send time minus the schedule; p50/p99 over every frame), client CPU per
session-second, client RSS per session, server events received per second, server CPU share.
For rtfleet also the writer backlog (audio queued behind ``fleet.send``) and dropped audio.

Usage::

    python bench/ws_fleet.py --sessions 50,100,200,300,400,500 --repeats 3 --duration 10 \
        --json-out ws_fleet.json

The search stops at the first N where rtfleet's median p99 lateness is >= 20 ms (unless
``--no-stop``).  Ratios (rtfleet / baseline, rtfleet-clock / baseline) are of medians measured
at the same N in the same run.  On a loaded machine, where a client cannot keep real time and
sends fewer frames than it should, CPU per session-second flatters it: compare CPU per frame
sent (``cpu_us_per_frame``; ``cpu_sys_us_per_frame`` is its kernel part) then, and read no
lateness figure.

``--profile DIR`` records each client's worker with py-spy during its first window:
``DIR/KIND-N.txt`` (collapsed stacks) and ``DIR/KIND-N-top.txt`` (CPU by part of the client's
path, in us per frame sent; own and inclusive time per function). rtfleet rows also report the
cyclic garbage collector: its time per second, its full (gen2) collections in the window and
what one costs at the end (a full collection stops every stream: at N=500 it is the p99);
``--gc-freeze`` has the rtfleet workers call ``fleet.freeze_heap()`` once every session is up.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

LATE_LIMIT_MS = 20.0
KINDS = ("rtfleet", "rtfleet-clock", "rtfleet-tws", "rtfleet-live", "bare", "websockets", "openai")
RTFLEET = ("rtfleet", "rtfleet-clock", "rtfleet-tws", "rtfleet-live")
MODEL = "gpt-realtime"


# -- the per-process measurement ---------------------------------------------------------------


class Meter:
    """Collects one worker's figures; the clock is a callable in seconds."""

    def __init__(self, clock, sessions: int, warmup: float, duration: float, server_pid: int | None):
        self.clock = clock
        self.sessions = sessions
        self.warmup = warmup
        self.duration = duration
        self.server_pid = server_pid
        self.lateness: list[float] = []
        self.events = 0
        self.frames = 0
        self.window: tuple[float, float] | None = None
        self.rss_base = C.proc_rss()
        self.connect_s = math.nan

    def start_window(self, start: float) -> None:
        self.window = (start + self.warmup, start + self.warmup + self.duration)

    def in_window(self, t: float) -> bool:
        w = self.window
        return w is not None and w[0] <= t < w[1]

    def frame(self, scheduled: float, now: float) -> None:
        if self.in_window(scheduled):
            self.lateness.append(now - scheduled)
            self.frames += 1

    def event(self) -> None:
        if self.in_window(self.clock()):
            self.events += 1

    def snap(self) -> tuple[float, float, float, float]:
        server = C.proc_cpu(self.server_pid) if self.server_pid else math.nan
        return self.clock(), C.proc_cpu(), server, os.times().system

    def result(self, kind: str, a: tuple, b: tuple, extra: dict[str, Any]) -> dict[str, Any]:
        wall = b[0] - a[0]
        cpu = b[1] - a[1]
        late_ms = [x * 1000 for x in self.lateness]
        return {
            "kind": kind,
            "sessions": self.sessions,
            "window_s": wall,
            "connect_s": self.connect_s,
            "frames": self.frames,
            "late_p50_ms": C.percentile(late_ms, 50),
            "late_p99_ms": C.percentile(late_ms, 99),
            "late_max_ms": max(late_ms) if late_ms else math.nan,
            "cpu_s": cpu,
            "cpu_pct": 100 * cpu / wall,
            "cpu_us_per_session_s": 1e6 * cpu / (self.sessions * wall),
            # robust when the client falls behind (a loaded machine): CPU per frame it did send
            "cpu_us_per_frame": 1e6 * cpu / self.frames if self.frames else math.nan,
            # of which in the kernel (system time: the socket writes and reads, epoll)
            "cpu_sys_us_per_frame": 1e6 * (b[3] - a[3]) / self.frames if self.frames else math.nan,
            "server_cpu_pct": 100 * (b[2] - a[2]) / wall,
            "rss_per_session_kb": (C.proc_rss() - self.rss_base) / self.sessions / 1024,
            "events_per_s": self.events / wall,
            "frames_per_s": self.frames / wall,
            **extra,
        }


# -- profiling (--profile DIR): py-spy on a worker during its window ------------------------------


def _spy(out: Path | None, seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy record of this process for ``seconds`` in collapsed-stack form (started now)."""
    if out is None:
        return None

    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(os.getpid()), "--duration", str(max(1, round(seconds))),
         "--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


#: where a client sample's time goes: the first category with a frame on the sample's stack
#: (more specific categories first)
CLIENT_PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("bench: meter (on_frame) + consumer", ("Meter.", "consume (", "watch_backlog")),
    ("send: socket write (os.write)", ("_os_write", "_write_buffered", "drain (actors/wsconn")),
    ("send: frame + mask", ("text_frame", "write_text", "write_texts", "write_utf8")),
    ("send: JSON encode", ("encode_client_event", "append_json")),
    ("send: clock, stream, link, core", ("_run_tick", "_run_due", "AudioClock.run", "PacedStream.step",
                                         "send_audio_now", "write_append_now", "_write_now")),
    ("receive: socket read", ("_read_socket", "os.read", "_on_readable (actors/wsconn.py:27")),
    ("receive: frames (split, protocol, decode)", ("FrameSplitter", "_absorb", "MessageAssembler",
                                                   "_split", "_decode (actors")),
    ("receive: JSON parse + check", ("parse_server_event", "decode_frame", "check_server_event",
                                     "loads (json", "_find_fault", "scan_server_event")),
    ("receive: core (mirror, turns, acks, bound)", ("_apply_all", "ClientCore.receive")),
    ("receive: stamp + publish + router", ("emit (actors/link", "Router.publish", "_publish (",
                                           "EventStamper.make", "_offer")),
    ("receive: handle_incoming + reader glue", ("handle_incoming", "_reader (actors", "get_message",
                                                "_receive (actors", "WsInbox", "_deliver", "_on_readable")),
    ("gc", ("<gc>", "gc_collect")),
]

def client_breakdown(collapsed: Path, frames: int, cpu_s: float, top: int = 40) -> str:
    """Samples by part (with us of CPU per frame sent, scaling the window's CPU by each part's
    share of samples), then own and inclusive time per function."""
    total, parts, own, inclusive = C.folded_breakdown(
        collapsed, CLIENT_PARTS, "trio scheduler, tasks' wake-ups and the rest")
    total = max(total, 1)
    per_frame = 1e6 * cpu_s / frames if frames else math.nan
    lines = [f"{total} samples (trio's epoll wait left out); {per_frame:.1f} us CPU per frame sent",
             "", "by part (share of samples, us per frame):"]
    for name, n in sorted(parts.items(), key=lambda kv: -kv[1]):
        lines.append(f"{100 * n / total:6.1f}%  {per_frame * n / total:6.2f} us  {name}")
    lines += C.function_lines(own, inclusive, total, top)
    return "\n".join(lines) + "\n"


class GcTimer:
    """Time spent in the cyclic garbage collector (``gc.callbacks``), per generation, while
    ``on``: a collection of the old generations walks every tracked object of the process."""

    def __init__(self) -> None:
        import gc

        self.on = False
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.on:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.counts[generation] += 1

    def figures(self, wall: float) -> dict[str, Any]:
        import gc

        started = time.perf_counter()
        gc.collect()  # what one full collection of the process costs now
        full = time.perf_counter() - started
        out = {"gc_ms_per_s": 1000 * sum(self.seconds) / wall, "gc_counts": self.counts,
               "gc_gen2_mean_ms": 1000 * self.seconds[2] / max(self.counts[2], 1),
               "gc_tracked_objects": len(gc.get_objects()), "gc_full_ms": 1000 * full}
        types_out = os.environ.get("WS_FLEET_GC_TYPES")  # a file: what the tracked objects are
        if types_out:
            from collections import Counter

            counts = Counter(type(o).__name__ for o in gc.get_objects())
            Path(types_out).write_text("".join(f"{n:8d} {name}\n" for name, n in counts.most_common(40)))
        return out


def _phase(i: int, n: int) -> float:
    return (i / max(n, 1)) * C.CHUNK_MS / 1000


# -- rtfleet ---------------------------------------------------------------------------------------


async def worker_rtfleet(args, chunks: list[str]) -> dict[str, Any]:
    import trio

    from orchestrator.fleet import open_fleet

    m = Meter(trio.current_time, args.sessions, args.warmup, args.duration, args.server_pid)
    extra: dict[str, Any] = {}
    gc_timer = GcTimer()
    engine = "trio-websocket" if args.worker == "rtfleet-tws" else "websockets"
    async with open_fleet(args.url, api_key=args.key, key_mode="direct",
                          connect_params={"engine": engine}) as fleet:
        sub = fleet.subscribe(kinds=["server"], buffer=math.inf)
        t0 = trio.current_time()
        protocol = "live" if args.worker == "rtfleet-live" else "realtime"
        sids = [await fleet.add_session(protocol=protocol) for _ in range(args.sessions)]
        for sid in sids:
            await fleet.wait_connected(sid)
        m.connect_s = trio.current_time() - t0
        if args.gc_freeze:  # the objects of the set-up out of every later collection
            extra["heap_frozen_objects"] = fleet.freeze_heap()
        links = [fleet.links[sid] for sid in sids]
        backlog = [0]

        async def consume() -> None:
            async for _ in sub:
                m.event()

        async def source(i: int, sid: str, start: float) -> None:
            send = fleet.send
            k = 0
            n = len(chunks)
            while True:
                at = start + k * 0.02
                await trio.sleep_until(at)
                await send(sid, {"type": "input_audio_buffer.append", "audio": chunks[k % n]})
                m.frame(at, trio.current_time())
                k += 1

        async def watch_backlog() -> None:
            while True:
                await trio.sleep(0.1)
                if m.in_window(trio.current_time()):
                    backlog[0] = max(backlog[0], max(l.core.queued_audio for l in links))

        def endless(i: int):
            # the same frames as ``source`` sends (frame k of session i is chunks[k % n])
            return itertools.cycle(chunks)

        async def stream(i: int, sid: str, start: float) -> None:
            await trio.sleep_until(start)  # the clock gives each stream its phase
            await fleet.stream_audio(sid, endless(i), on_frame=m.frame)

        async with trio.open_nursery() as nursery:
            start = trio.current_time() + 0.05
            m.start_window(start)
            nursery.start_soon(consume)
            nursery.start_soon(watch_backlog)
            for i, sid in enumerate(sids):
                if args.worker == "rtfleet-clock":
                    nursery.start_soon(stream, i, sid, start)
                else:
                    nursery.start_soon(source, i, sid, start + _phase(i, len(sids)))
            await trio.sleep_until(m.window[0])
            gc_timer.on = True
            a = m.snap()
            spy = _spy(args.profile_out, args.duration)
            await trio.sleep_until(m.window[1])
            b = m.snap()
            gc_timer.on = False
            nursery.cancel_scope.cancel()
        if spy is not None:
            spy.wait()
        extra.update(gc_timer.figures(b[0] - a[0]))
        extra["writer_backlog_max_frames"] = backlog[0]
        extra["dropped_audio"] = sum(l.core.counters.dropped_audio for l in links)
        extra["reconnects"] = sum(s.reconnects for s in fleet.statuses().values())
        extra["protocol_errors"] = 0
        sub.close()
    return m.result(args.worker, a, b, extra)


# -- bare trio-websocket -----------------------------------------------------------------------


async def worker_bare(args, chunks: list[str]) -> dict[str, Any]:
    import trio
    from trio_websocket import open_websocket_url

    m = Meter(trio.current_time, args.sessions, args.warmup, args.duration, args.server_pid)
    url = args.url.replace("http", "ws", 1) + f"/v1/realtime?model={MODEL}"
    headers = [(b"Authorization", f"Bearer {args.key}".encode())]
    connected = [0]
    all_up = trio.Event()
    go = trio.Event()
    start_at = [0.0]

    async def session(i: int) -> None:
        async with open_websocket_url(url, extra_headers=headers) as ws:
            first = json.loads(await ws.get_message())
            assert first["type"] == "session.created", first
            connected[0] += 1
            if connected[0] == args.sessions:
                all_up.set()
            await go.wait()

            async def reader() -> None:
                while True:
                    json.loads(await ws.get_message())
                    m.event()

            async with trio.open_nursery() as inner:
                inner.start_soon(reader)
                start = start_at[0] + _phase(i, args.sessions)
                n = len(chunks)
                k = 0
                while True:
                    at = start + k * 0.02
                    await trio.sleep_until(at)
                    await ws.send_message(json.dumps(
                        {"type": "input_audio_buffer.append", "audio": chunks[k % n]}))
                    m.frame(at, trio.current_time())
                    k += 1

    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        for i in range(args.sessions):
            nursery.start_soon(session, i)
        await all_up.wait()
        m.connect_s = trio.current_time() - t0
        start_at[0] = trio.current_time() + 0.05
        m.start_window(start_at[0])
        go.set()
        await trio.sleep_until(m.window[0])
        a = m.snap()
        spy = _spy(args.profile_out, args.duration)
        await trio.sleep_until(m.window[1])
        b = m.snap()
        nursery.cancel_scope.cancel()
    if spy is not None:
        spy.wait()
    return m.result("bare", a, b, {})


# -- asyncio clients (websockets, openai SDK) -----------------------------------------------------------


async def worker_asyncio(args, chunks: list[str]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    m = Meter(loop.time, args.sessions, args.warmup, args.duration, args.server_pid)
    ws_base = args.url.replace("http", "ws", 1)
    connected = [0]
    all_up = asyncio.Event()
    go = asyncio.Event()
    start_at = [0.0]
    n = len(chunks)

    async def pace(i: int, send) -> None:
        start = start_at[0] + _phase(i, args.sessions)
        k = 0
        while True:
            at = start + k * 0.02
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(chunks[k % n])
            m.frame(at, loop.time())
            k += 1

    def up() -> None:
        connected[0] += 1
        if connected[0] == args.sessions:
            all_up.set()

    if args.worker == "websockets":
        import websockets

        url = f"{ws_base}/v1/realtime?model={MODEL}"

        async def session(i: int) -> None:
            async with websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {args.key}"},
                compression=None, max_size=16 * 2**20, open_timeout=60,
            ) as ws:
                first = json.loads(await ws.recv())
                assert first["type"] == "session.created", first
                up()
                await go.wait()

                async def reader() -> None:
                    async for message in ws:
                        json.loads(message)
                        m.event()

                async def send(chunk: str) -> None:
                    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))

                task = asyncio.create_task(reader())
                try:
                    await pace(i, send)
                finally:
                    task.cancel()
    else:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(api_key=args.key, websocket_base_url=f"{ws_base}/v1", max_retries=0)

        async def session(i: int) -> None:
            async with client.realtime.connect(model=MODEL) as conn:
                first = await conn.recv()
                assert first.type == "session.created", first
                up()
                await go.wait()

                async def reader() -> None:
                    async for _event in conn:
                        m.event()

                async def send(chunk: str) -> None:
                    await conn.input_audio_buffer.append(audio=chunk)

                task = asyncio.create_task(reader())
                try:
                    await pace(i, send)
                finally:
                    task.cancel()

    t0 = loop.time()
    tasks = [asyncio.create_task(session(i)) for i in range(args.sessions)]
    waiter = asyncio.create_task(all_up.wait())
    # a client that cannot connect its sessions fails its run instead of holding up the others
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED,
                                 timeout=30 + args.sessions * 0.1)
    if waiter not in done:
        for t in done:
            t.result()  # raises the session's error
        raise RuntimeError(f"only {connected[0]} of {args.sessions} sessions connected in "
                           f"{loop.time() - t0:.0f} s")
    m.connect_s = loop.time() - t0
    start_at[0] = loop.time() + 0.05
    m.start_window(start_at[0])
    go.set()
    await asyncio.sleep(max(0.0, m.window[0] - loop.time()))
    a = m.snap()
    spy = _spy(args.profile_out, args.duration)
    await asyncio.sleep(max(0.0, m.window[1] - loop.time()))
    b = m.snap()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if spy is not None:
        spy.wait()
    return m.result(args.worker, a, b, {"compression": "none" if args.worker == "websockets" else "sdk default"})


def run_worker_main(args) -> None:
    chunks = C.pcm_chunks_b64()
    if args.worker in (*RTFLEET, "bare"):
        import trio

        fn = worker_bare if args.worker == "bare" else worker_rtfleet
        result = trio.run(fn, args, chunks)
    else:
        result = asyncio.run(worker_asyncio(args, chunks))
    print(json.dumps(result))


# -- the driver --------------------------------------------------------------------------------


def drive(args) -> int:
    env = C.environment()
    kinds = [k for k in args.clients.split(",") if k]
    sizes = [int(s) for s in args.sessions.split(",")]
    report: dict[str, Any] = {"benchmark": "ws_fleet", "env": env, "args": vars(args), "sizes": {}}
    largest: dict[str, int] = {k: 0 for k in kinds}
    print(f"ws_fleet: clients {','.join(kinds)}; server engine {args.server_engine}; sizes {sizes}; "
          f"{args.repeats} repeats; "
          f"window {args.duration}s after {args.warmup}s warm-up; load {env['loadavg_start']}")
    for n in sizes:
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        with C.server_process(["--engine", args.server_engine]) as server:
            for rep in range(args.repeats):
                order = kinds[:] if rep % 2 == 0 else kinds[::-1]  # alternate to spread drift
                for kind in order:
                    argv = [str(Path(__file__)), "--worker", kind, "--url", server.url,
                            "--key", server.key, "--sessions-n", str(n),
                            "--duration", str(args.duration), "--warmup", str(args.warmup),
                            "--server-pid", str(server.pid)] + (["--gc-freeze"] if args.gc_freeze else [])
                    prof = None
                    if args.profile and rep == 0:
                        prof = Path(args.profile).resolve() / f"{kind}-{n}.txt"
                        argv += ["--profile-out", str(prof)]
                    budget = 120 + n * 0.5 + args.duration + args.warmup
                    try:
                        r = C.run_worker(argv, timeout=budget)
                    except Exception as exc:  # a hung worker counts as a failed run
                        r = {"error": f"{type(exc).__name__}: {exc}"}
                    r["loadavg"] = C.loadavg()[0]
                    runs[kind].append(r)
                    if prof is not None and prof.exists() and "error" not in r:
                        prof.with_name(f"{kind}-{n}-top.txt").write_text(
                            client_breakdown(prof, r["frames"], r["cpu_s"]))
                    if "error" in r:
                        print(f"  N={n} {kind:<11} rep {rep}: ERROR {r['error'][-300:]}")
                    else:
                        print(f"  N={n} {kind:<11} rep {rep}: p50 {r['late_p50_ms']:.2f} ms "
                              f"p99 {r['late_p99_ms']:.2f} ms, CPU {r['cpu_us_per_session_s']:.0f} "
                              f"us/session-s ({r['cpu_pct']:.0f}% client, {r['server_cpu_pct']:.0f}% "
                              f"server), RSS {r['rss_per_session_kb']:.0f} KB/session, "
                              f"{r['events_per_s']:.0f} ev/s, load {r['loadavg']:.2f}"
                              + (f", backlog {r['writer_backlog_max_frames']} frames, dropped "
                                 f"{r['dropped_audio']}, GC {r['gc_ms_per_s']:.1f} ms/s "
                                 f"(gen2 {r['gc_counts'][2]}x {r['gc_gen2_mean_ms']:.0f} ms; {r['gc_tracked_objects']} objects, "
                                 f"full {r['gc_full_ms']:.0f} ms)"
                                 if kind.startswith("rtfleet") else "")
                              + f", CPU/frame {r['cpu_us_per_frame']:.0f} us "
                              f"({r['cpu_sys_us_per_frame']:.0f} us system)", flush=True)
        agg: dict[str, Any] = {}
        for kind, rs in runs.items():
            ok = [r for r in rs if "error" not in r]
            agg[kind] = {key: C.summary([r[key] for r in ok]) for key in (
                "late_p50_ms", "late_p99_ms", "cpu_us_per_session_s", "cpu_us_per_frame", "cpu_pct",
                "server_cpu_pct", "frames_per_s",
                "rss_per_session_kb", "events_per_s", "connect_s")}
            agg[kind]["errors"] = len(rs) - len(ok)
            p99 = agg[kind]["late_p99_ms"]
            agg[kind]["held"] = bool(p99["n"] and p99["median"] < LATE_LIMIT_MS and not agg[kind]["errors"])
            if agg[kind]["held"]:
                largest[kind] = max(largest[kind], n)
        ratios = {}
        for mine in [k for k in ("rtfleet", "rtfleet-clock") if k in agg]:
            for base in kinds:
                if base != mine and (mine == "rtfleet" or base not in RTFLEET):
                    ratios[f"{mine}/{base}"] = {
                        key: C.ratio(agg[mine][key], agg[base][key])
                        for key in ("cpu_us_per_session_s", "cpu_us_per_frame", "rss_per_session_kb",
                                    "late_p99_ms")}
        report["sizes"][str(n)] = {"runs": runs, "summary": agg, "ratios": ratios}
        print(f"N={n} (median [min..max] over {args.repeats})")
        for kind in kinds:
            s = agg[kind]
            print(f"  {kind:<13} p50 {C.fmt(s['late_p50_ms'], digits=2)} ms  p99 "
                  f"{C.fmt(s['late_p99_ms'], digits=2)} ms  CPU {C.fmt(s['cpu_us_per_session_s'], digits=0)} "
                  f"us/session-s  CPU {C.fmt(s['cpu_us_per_frame'], digits=0)} us/frame sent  "
                  f"{C.fmt(s['frames_per_s'], digits=0)} frames/s  RSS {C.fmt(s['rss_per_session_kb'], digits=0)} KB/session  "
                  f"{C.fmt(s['events_per_s'], digits=0)} ev/s  server CPU {C.fmt(s['server_cpu_pct'], digits=0)}%"
                  f"{'' if s['held'] else '  (NOT held)'}")
        for name, r in ratios.items():
            print(f"  {name}: CPU/session-s {r['cpu_us_per_session_s']:.2f}x  "
                  f"CPU/frame {r['cpu_us_per_frame']:.2f}x  "
                  f"RSS/session {r['rss_per_session_kb']:.2f}x  p99 lateness {r['late_p99_ms']:.2f}x")
        lead = next((k for k in RTFLEET if k in agg), None)
        if lead is not None and not agg[lead]["held"] and not args.no_stop:
            print(f"  {lead} p99 lateness >= {LATE_LIMIT_MS} ms at N={n}: stopping the search")
            break
    report["largest_held"] = largest
    report["env"]["loadavg_end"] = C.loadavg()
    last = report["sizes"][max(report["sizes"], key=int)]
    cpu_ratios = ", ".join(f"{k} {v['cpu_us_per_session_s']:.2f}x" for k, v in last["ratios"].items())
    line = (f"SUMMARY ws_fleet: largest N with p99 < {LATE_LIMIT_MS:g} ms: "
            + ", ".join(f"{k} {v}" for k, v in largest.items())
            + f"; CPU ratios at N={max(report['sizes'], key=int)}: {cpu_ratios or 'n/a'}"
            + f"; load {report['env']['loadavg_start'][0]:.2f}->{report['env']['loadavg_end'][0]:.2f}")
    report["summary_line"] = line
    C.write_json(args.json_out, report)
    print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", default="50,100,200,300,400,500",
                   help="comma-separated session counts to try, upward")
    p.add_argument("--clients", default=",".join(KINDS), help=f"subset of {','.join(KINDS)}")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0, help="measurement window, seconds")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds streamed before the window")
    p.add_argument("--no-stop", action="store_true", help="try every size even after a miss")
    p.add_argument("--json-out", default=None)
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="py-spy each client's worker during its first window (pip install py-spy): "
                        "DIR/KIND-N.txt (collapsed stacks) and DIR/KIND-N-top.txt (CPU by part, "
                        "us per frame sent; own and inclusive time per function)")
    p.add_argument("--gc-freeze", action="store_true",
                   help="rtfleet workers: fleet.freeze_heap() once every session is connected "
                        "(an embedder's call: a full collection then walks only what came after, "
                        "not the fleet's sessions)")
    p.add_argument("--server-engine", choices=("lean", "hypercorn"), default="lean",
                   help="the embedded server's HTTP/WebSocket engine (EmbeddedServer.engine)")
    # worker mode (internal)
    p.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--key", help=argparse.SUPPRESS)
    p.add_argument("--sessions-n", type=int, dest="sessions_n", help=argparse.SUPPRESS)
    p.add_argument("--server-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--profile-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    if args.worker:
        args.sessions = args.sessions_n
        run_worker_main(args)
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
