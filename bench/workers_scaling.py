"""workers-scaling: how many streaming sessions 1 worker process holds, and how many 2 hold.

The workload is ``ws_fleet.py``'s: every session streams 24 kHz PCM16 in 20 ms
``input_audio_buffer.append`` chunks on a fixed real-time schedule (1 s tone, 1 s silence); the
embedded server (its own process, ``bench/_server.py``) runs server VAD and answers each tone
with paced audio deltas, which the client receives and parses.  A session "holds" when its
frames leave on time: the criterion is the **p99 frame lateness < 20 ms** (wake-up + send time
minus the schedule, over every frame of every session in the window).

Layout, as ``rtfleet run --workers N`` runs it: one trio process per worker, each running
``open_fleet`` with its share of the sessions (``N/W``, the remainder to the first workers),
all against one server process.  The workers connect, report ready, and the driver starts
every worker's audio at the same wall-clock instant, so the measurement windows coincide.
Each worker returns its lateness as a mergeable histogram; the driver merges them (never
averages percentiles).  The session pacing loop is the benchmark's own (the same as
``ws_fleet.py``'s), not the scenario runner's ``play`` step.

For W = 1 the search goes up ``--sessions`` until the median p99 over ``--repeats`` is >= 20 ms;
for W = 2 it starts at the largest size W = 1 held.  Printed: figures per run and per size
(median [min..max] over repeats), the largest size held per W, the ratio, the load average,
worker and server CPU; then a ``SUMMARY`` line; ``--json-out`` writes everything.

On a 2-core machine the server process competes with the workers for the same cores: the ratio
measures the whole box, not only the client side (see the server CPU share in the figures).

Usage::

    python bench/workers_scaling.py --sessions 40,60,80,100,120,140,160,200,240,280 \
        --repeats 3 --duration 8 --warmup 2 --json-out workers_scaling.json
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

LATE_LIMIT_MS = 20.0


# -- the worker process ---------------------------------------------------------------------------


async def worker(args) -> dict[str, Any]:
    import trio

    from orchestrator.fleet import open_fleet
    from orchestrator.metrics import Histogram

    chunks = C.pcm_chunks_b64()
    n = args.sessions_n
    late = Histogram()
    counts = {"frames": 0, "events": 0}
    async with open_fleet(args.url, api_key=args.key, key_mode="direct") as fleet:
        sub = fleet.subscribe(kinds=["server"], buffer=math.inf)
        t0 = trio.current_time()
        sids = [await fleet.add_session() for _ in range(n)]
        for sid in sids:
            await fleet.wait_connected(sid)
        connect_s = trio.current_time() - t0
        print("ready", flush=True)
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        go_wall = float(line.split()[1])  # "go T": every worker starts at wall time T
        start = trio.current_time() + (go_wall - time.time())
        window = (start + args.warmup, start + args.warmup + args.duration)
        links = [fleet.links[sid] for sid in sids]

        async def consume() -> None:
            async for _ in sub:
                if window[0] <= trio.current_time() < window[1]:
                    counts["events"] += 1

        async def source(i: int, sid: str, begin: float) -> None:
            send = fleet.send
            k = 0
            while True:
                at = begin + k * 0.02
                await trio.sleep_until(at)
                await send(sid, {"type": "input_audio_buffer.append", "audio": chunks[k % len(chunks)]})
                if window[0] <= at < window[1]:
                    late.record(max(0.0, trio.current_time() - at))
                    counts["frames"] += 1
                k += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            for i, sid in enumerate(sids):
                # phases spread over one frame, as in ws_fleet.py
                nursery.start_soon(source, i, sid, start + (i / max(n, 1)) * 0.02)
            await trio.sleep_until(window[0])
            a = (trio.current_time(), C.proc_cpu(), C.proc_cpu(args.server_pid))
            await trio.sleep_until(window[1])
            b = (trio.current_time(), C.proc_cpu(), C.proc_cpu(args.server_pid))
            nursery.cancel_scope.cancel()
        dropped = sum(link.core.counters.dropped_audio for link in links)
        reconnects = sum(s.reconnects for s in fleet.statuses().values())
        sub.close()
    wall = b[0] - a[0]
    return {"sessions": n, "connect_s": connect_s, "window_s": wall, "lateness": late.to_dict(),
            "frames": counts["frames"], "events": counts["events"],
            "cpu_pct": 100 * (b[1] - a[1]) / wall, "server_cpu_pct": 100 * (b[2] - a[2]) / wall,
            "dropped_audio": dropped, "reconnects": reconnects}


# -- one measurement: W workers, N sessions -------------------------------------------------------


def measure(server: C.ServerProcess, workers: int, sessions: int, args) -> dict[str, Any]:
    from orchestrator.metrics import Histogram

    shares = [sessions // workers + (1 if i < sessions % workers else 0) for i in range(workers)]
    procs = [subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--worker", "--url", server.url, "--sessions-n",
         str(share), "--duration", str(args.duration), "--warmup", str(args.warmup),
         "--server-pid", str(server.pid)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=str(C.ROOT), env={**__import__("os").environ, "RTFLEET_BENCH_KEY": server.key})
        for share in shares]
    try:
        for p in procs:  # each worker says "ready" once its sessions are connected
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                _, err = p.communicate(timeout=30)
                return {"error": f"worker did not get ready ({line!r}): {err[-1500:]}"}
        go = time.time() + 0.3
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(f"go {go!r}\n")
            p.stdin.flush()
        budget = 60 + args.warmup + args.duration + sessions * 0.2
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=budget)
            lines = [l for l in out.splitlines() if l.startswith("{")]
            if p.returncode != 0 or not lines:
                return {"error": f"worker exit {p.returncode}: {err[-1500:]}"}
            outs.append(json.loads(lines[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    late = Histogram()
    for o in outs:
        late.merge(Histogram.from_dict(o["lateness"]))
    window = max(o["window_s"] for o in outs)
    return {
        "workers": workers, "sessions": sessions, "shares": shares,
        "late_p50_ms": 1000 * late.percentile(50), "late_p99_ms": 1000 * late.percentile(99),
        "late_max_ms": 1000 * late.percentile(100), "frames": late.count,
        "frames_expected": round(sessions * window / 0.02),
        "events_per_s": sum(o["events"] for o in outs) / window,
        "worker_cpu_pct": [round(o["cpu_pct"], 1) for o in outs],
        "server_cpu_pct": outs[0]["server_cpu_pct"],
        "connect_s": max(o["connect_s"] for o in outs),
        "dropped_audio": sum(o["dropped_audio"] for o in outs),
        "reconnects": sum(o["reconnects"] for o in outs),
    }


def search(workers: int, sizes: list[int], args, report: dict[str, Any]) -> int:
    """Largest size (upward through ``sizes``) whose median p99 lateness < the limit."""
    held = 0
    for n in sizes:
        runs = []
        with C.server_process() as server:
            for rep in range(args.repeats):
                load = C.loadavg()[0]
                try:
                    r = measure(server, workers, n, args)
                except Exception as exc:  # a hung worker counts as a failed run
                    r = {"error": f"{type(exc).__name__}: {exc}"}
                r["loadavg"] = load
                runs.append(r)
                if "error" in r:
                    print(f"  W={workers} N={n} rep {rep}: ERROR {r['error'][-400:]}", flush=True)
                else:
                    print(f"  W={workers} N={n} rep {rep}: p50 {r['late_p50_ms']:.2f} ms p99 "
                          f"{r['late_p99_ms']:.2f} ms max {r['late_max_ms']:.1f} ms; workers CPU "
                          f"{r['worker_cpu_pct']}%, server CPU {r['server_cpu_pct']:.0f}%; "
                          f"{r['events_per_s']:.0f} ev/s; frames {r['frames']}/{r['frames_expected']}; "
                          f"load {load:.2f}", flush=True)
        ok = [r for r in runs if "error" not in r]
        agg = {key: C.summary([r[key] for r in ok]) for key in (
            "late_p50_ms", "late_p99_ms", "server_cpu_pct", "events_per_s", "loadavg")}
        agg["worker_cpu_pct_total"] = C.summary([sum(r["worker_cpu_pct"]) for r in ok])
        agg["errors"] = len(runs) - len(ok)
        p99 = agg["late_p99_ms"]
        agg["held"] = bool(p99["n"] and p99["median"] < LATE_LIMIT_MS and not agg["errors"])
        report["runs"].setdefault(str(workers), {})[str(n)] = {"runs": runs, "summary": agg}
        print(f"W={workers} N={n}: p99 {C.fmt(p99, digits=2)} ms, p50 "
              f"{C.fmt(agg['late_p50_ms'], digits=2)} ms, workers CPU "
              f"{C.fmt(agg['worker_cpu_pct_total'], digits=0)}%, server CPU "
              f"{C.fmt(agg['server_cpu_pct'], digits=0)}%, load {C.fmt(agg['loadavg'], digits=2)}"
              f"{'' if agg['held'] else '  (NOT held)'}", flush=True)
        if not agg["held"]:
            break
        held = n
    return held


def drive(args) -> int:
    env = C.environment()
    sizes = sorted(int(s) for s in args.sessions.split(","))
    report: dict[str, Any] = {"benchmark": "workers_scaling", "env": env, "args": vars(args),
                              "limit_ms": LATE_LIMIT_MS, "runs": {}}
    print(f"workers_scaling: sizes {sizes}; {args.repeats} repeats; window {args.duration}s after "
          f"{args.warmup}s warm-up; {env['cpus']} CPUs; load {env['loadavg_start']}", flush=True)
    one = search(1, sizes, args, report)
    # two workers hold at least what one does (or the search says otherwise at once)
    two = search(2, [n for n in sizes if n >= one] or sizes[-1:], args, report)
    largest = {"1": one, "2": two}
    ratio = two / one if one else math.nan
    report["largest_held"] = largest
    report["ratio"] = ratio
    top = max(sizes)
    capped = [w for w, n in largest.items() if n == top]
    if capped:
        report["note"] = f"W={','.join(capped)} held the largest size tried ({top}): add larger sizes"
        print(f"note: {report['note']}")
    report["env"]["loadavg_end"] = C.loadavg()
    line = (f"SUMMARY workers_scaling: largest N with p99 frame lateness < {LATE_LIMIT_MS:g} ms: "
            f"1 worker {one}, 2 workers {two}, ratio {ratio:.2f}x; load "
            f"{env['loadavg_start'][0]:.2f}->{report['env']['loadavg_end'][0]:.2f} on {env['cpus']} CPUs")
    report["summary_line"] = line
    C.write_json(args.json_out, report)
    print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    import os

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", default="40,60,80,100,120,140,160,200,240,280,320",
                   help="comma-separated total session counts to try, upward")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--duration", type=float, default=8.0, help="measurement window, seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds streamed before the window")
    p.add_argument("--json-out", default=None)
    # worker mode (internal); the key comes in the environment, never on the command line
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--sessions-n", type=int, dest="sessions_n", help=argparse.SUPPRESS)
    p.add_argument("--server-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        import trio

        args.key = os.environ["RTFLEET_BENCH_KEY"]
        print(json.dumps(trio.run(worker, args)), flush=True)
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
