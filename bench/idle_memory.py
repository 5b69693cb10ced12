"""idle-memory: memory per idle WebSocket session (target: <= 200 KB).

The embedded server runs in its own process.  The client process opens a fleet
(``key_mode="direct"``), then:

1. RSS: adds ``--sessions`` sessions, waits until all are connected and idle (``--settle``
   seconds, ``gc.collect()``), and divides the RSS growth by the count;
2. tracemalloc: starts tracing, adds ``--traced`` more sessions the same way, and divides the
   traced Python allocation growth by that count (Python objects only: the kernel's socket
   buffers are not in either figure).

Baseline in the same run (a separate process): N idle bare trio-websocket connections
(``open_websocket_url``, the ``session.created`` read, nothing else).

Usage::

    python bench/idle_memory.py --sessions 500 --repeats 3 --json-out idle_memory.json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

TARGET_KB = 200.0


async def _settle(seconds: float) -> None:
    import trio

    await trio.sleep(seconds)
    gc.collect()


async def worker_rtfleet(args) -> dict[str, Any]:
    import trio

    from orchestrator.fleet import open_fleet

    out: dict[str, Any] = {}
    async with open_fleet(args.url, api_key=args.key, key_mode="direct") as fleet:
        async def add(n: int) -> None:
            sids = [await fleet.add_session() for _ in range(n)]
            for sid in sids:
                await fleet.wait_connected(sid)
            await _settle(args.settle)

        await _settle(0.2)
        rss0 = C.proc_rss()
        await add(args.sessions)
        out["rss_per_session_kb"] = (C.proc_rss() - rss0) / args.sessions / 1024
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        await add(args.traced)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = after.compare_to(before, "filename")
        out["traced_per_session_kb"] = sum(s.size_diff for s in stats) / args.traced / 1024
        out["top_files"] = [(str(s.traceback[0].filename).split("site-packages/")[-1],
                             round(s.size_diff / args.traced / 1024, 1)) for s in stats[:8]]
    return out


async def worker_bare(args) -> dict[str, Any]:
    import trio
    from trio_websocket import open_websocket_url

    url = args.url.replace("http", "ws", 1) + "/v1/realtime?model=gpt-realtime"
    headers = [(b"Authorization", f"Bearer {args.key}".encode())]
    out: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        async def hold(up: list[int], done: trio.Event, total: int) -> None:
            async with open_websocket_url(url, extra_headers=headers) as ws:
                await ws.get_message()
                up[0] += 1
                if up[0] == total:
                    done.set()
                await trio.sleep_forever()

        async def add(n: int) -> None:
            up, done = [0], trio.Event()
            for _ in range(n):
                nursery.start_soon(hold, up, done, n)
            await done.wait()
            await _settle(args.settle)

        await _settle(0.2)
        rss0 = C.proc_rss()
        await add(args.sessions)
        out["rss_per_session_kb"] = (C.proc_rss() - rss0) / args.sessions / 1024
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        await add(args.traced)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        out["traced_per_session_kb"] = sum(
            s.size_diff for s in after.compare_to(before, "filename")) / args.traced / 1024
        nursery.cancel_scope.cancel()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=500)
    p.add_argument("--traced", type=int, default=100, help="sessions added under tracemalloc")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--json-out", default=None)
    p.add_argument("--worker", choices=("rtfleet", "bare"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--key", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        import trio

        fn = worker_rtfleet if args.worker == "rtfleet" else worker_bare
        print(json.dumps(trio.run(fn, args)))
        return 0
    env = C.environment()
    print(f"idle_memory: {args.sessions} sessions (+{args.traced} traced), {args.repeats} repeats, "
          f"load {env['loadavg_start']}")
    runs: dict[str, list[dict[str, Any]]] = {"rtfleet": [], "bare": []}
    with C.server_process() as server:
        for rep in range(args.repeats):
            for kind in ("rtfleet", "bare"):
                argv_w = [str(Path(__file__)), "--worker", kind, "--url", server.url, "--key", server.key,
                          "--sessions", str(args.sessions), "--traced", str(args.traced),
                          "--settle", str(args.settle)]
                r = C.run_worker(argv_w, timeout=120 + args.sessions * 0.2)
                runs[kind].append(r)
                if "error" in r:
                    print(f"  {kind:<8} rep {rep}: ERROR {r['error'][-300:]}")
                else:
                    print(f"  {kind:<8} rep {rep}: RSS {r['rss_per_session_kb']:.1f} KB/session, "
                          f"tracemalloc {r['traced_per_session_kb']:.1f} KB/session"
                          + (f"; top files {r['top_files'][:4]}" if 'top_files' in r else ""), flush=True)
    summ = {k: {f: C.summary([r[f] for r in rs if "error" not in r])
                for f in ("rss_per_session_kb", "traced_per_session_kb")} for k, rs in runs.items()}
    rss, traced = summ["rtfleet"]["rss_per_session_kb"], summ["rtfleet"]["traced_per_session_kb"]
    ratio = C.ratio(rss, summ["bare"]["rss_per_session_kb"])
    ok = bool(rss["n"]) and rss["median"] <= TARGET_KB
    report = {"benchmark": "idle_memory", "env": {**env, "loadavg_end": C.loadavg()}, "args": vars(args),
              "runs": runs, "summary": summ, "ratio_rss_rtfleet_over_bare": ratio, "target_kb": TARGET_KB,
              "meets_target": ok}
    print(f"  bare trio-websocket: RSS {C.fmt(summ['bare']['rss_per_session_kb'])} KB/session, "
          f"tracemalloc {C.fmt(summ['bare']['traced_per_session_kb'])} KB/session")
    line = (f"SUMMARY idle_memory: rtfleet {C.fmt(rss)} KB RSS/session, {C.fmt(traced)} KB traced/session "
            f"({ratio:.2f}x bare trio-websocket RSS; target <= {TARGET_KB:g} KB: "
            f"{'met' if ok else 'MISSED'}; median [min..max] over {args.repeats}, N={args.sessions})")
    report["summary_line"] = line
    C.write_json(args.json_out, report)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
