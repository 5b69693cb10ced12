"""reconnect-storm: N sessions (1,000 by default); the server drops all of them at once.

The embedded server runs in its own process (``bench/_server.py``); its ``drop`` command switches
the fault plan to ``FaultPlan(drop_after_s=0, drop_mode="abort")`` (every connection's TCP stream
is closed without a close frame, so clients see 1006), waits for them to close, and resets the
plan.  The rtfleet fleet (``key_mode="direct"``, default full-jitter ``Backoff()``) reconnects.

Before the drop every session creates a marker item (``conversation.item.create`` with a known
id) and waits for the server's ``conversation.item.done``.  Figures:

* time from the drop until every session is ``connected`` again;
* reconnects per 100 ms bin: peak vs mean (mean over the bins from the drop to the last
  reconnect): full jitter should flatten the herd;
* lost events, which must be 0: (a) each marker item must be in the restored conversation at
  the server (``conversation.item.retrieve`` after the reconnect answers ``retrieved``, not
  ``error``); (b) a broad subscriber with an unbounded buffer sees every session's event
  ``seq`` numbers without a gap, and the router counted no drop.

Usage::

    python bench/reconnect_storm.py --sessions 1000 --repeats 3 --json-out storm.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402
import trio  # noqa: E402

from orchestrator.fleet import open_fleet, user_text  # noqa: E402
from orchestrator.policy import Backoff  # noqa: E402

BIN_S = 0.1


def _rate(times: list[float]) -> tuple[list[int], int, float]:
    """Counts per 100 ms bin from the first to the last time; peak and mean per bin."""
    if not times:
        return [], 0, math.nan
    first = int(min(times) / BIN_S)
    bins: dict[int, int] = defaultdict(int)
    for t in times:
        bins[int(t / BIN_S) - first] += 1
    counts = [bins.get(i, 0) for i in range(max(bins) + 1)]
    return counts, max(counts), sum(counts) / len(counts)


def _progress(text: str) -> None:
    print(f"    .. {text}", file=sys.stderr, flush=True)


async def storm(server: C.ServerProcess, n: int, timeout: float, mode: str,
                backoff_base: float) -> dict[str, Any]:
    result: dict[str, Any] = {"sessions": n, "drop_mode": mode, "backoff_base_s": backoff_base}
    async with open_fleet(server.url, api_key=server.key, key_mode="direct",
                          max_restarts=50, backoff=Backoff(base=backoff_base)) as fleet:
        everything = fleet.subscribe(buffer=math.inf)
        seqs: dict[str, list[int]] = defaultdict(list)
        reconnect_times: list[float] = []
        dropped_at = [math.inf]
        retrieved: dict[str, str] = {}
        marked: set[str] = set()
        all_back = trio.Event()
        all_marked = trio.Event()
        all_checked = trio.Event()
        back: set[str] = set()
        lost_at: list[float] = []

        async def watch() -> None:
            async for ev in everything:
                sid = ev.session_id
                seqs[sid].append(ev.seq)
                if ev.kind == "state" and ev.payload["to"] == "reconnecting":
                    if ev.mono > dropped_at[0]:
                        lost_at.append(ev.mono - dropped_at[0])
                elif ev.kind == "state" and ev.payload["to"] == "connected":
                    now = ev.mono  # when the session emitted it, not when we read it
                    if now > dropped_at[0] and sid not in back:
                        back.add(sid)
                        reconnect_times.append(now - dropped_at[0])
                        if len(back) == n:
                            all_back.set()
                elif ev.kind == "server":
                    t = ev.payload["type"]
                    if t == "conversation.item.done" and ev.payload["item"]["id"] == f"mark_{sid}":
                        if sid not in marked:
                            marked.add(sid)
                            if len(marked) == n:
                                all_marked.set()
                    elif t == "conversation.item.retrieved" and sid not in retrieved:
                        retrieved[sid] = "ok" if ev.payload["item"]["id"] == f"mark_{sid}" else "other"
                    elif t == "error" and sid in back and sid not in retrieved:
                        retrieved[sid] = "error: " + str(ev.payload["error"].get("code"))
                    if len(retrieved) == n:
                        all_checked.set()

        fleet.nursery.start_soon(watch)
        t0 = trio.current_time()
        sids = [await fleet.add_session() for _ in range(n)]
        with trio.fail_after(timeout):
            for sid in sids:
                await fleet.wait_connected(sid)
        result["connect_all_s"] = trio.current_time() - t0
        _progress(f"{n} connected in {result['connect_all_s']:.2f} s")
        for sid in sids:
            await fleet.send(sid, user_text(f"marker of {sid}", item_id=f"mark_{sid}"))
        with trio.move_on_after(timeout):
            await all_marked.wait()
        if len(marked) < n:
            raise RuntimeError(f"only {len(marked)}/{n} marker items were confirmed before the drop")
        _progress("markers confirmed; dropping every connection")
        cpu0 = C.proc_cpu()
        dropped_at[0] = trio.current_time()
        answer = await trio.to_thread.run_sync(server.command, f"drop {mode}")
        result["server_answer"] = answer
        with trio.move_on_after(timeout) as waited:
            await all_back.wait()
        result["all_back"] = not waited.cancelled_caught
        result["back"] = len(back)
        result["time_to_all_back_s"] = max(reconnect_times) if reconnect_times else math.nan
        result["client_cpu_s"] = C.proc_cpu() - cpu0
        # how "at once" the drop was, as the client saw it
        result["drop_seen_first_s"] = min(lost_at) if lost_at else math.nan
        result["drop_seen_last_s"] = max(lost_at) if lost_at else math.nan
        for sid in sids:
            await fleet.send(sid, {"type": "conversation.item.retrieve", "item_id": f"mark_{sid}"})
        _progress(f"{len(back)}/{n} back; checking the markers")
        with trio.move_on_after(timeout):
            await all_checked.wait()
        await trio.sleep(0.2)  # let the watcher take the last events
        counts, peak, mean = _rate(reconnect_times)
        result["bins_per_100ms"] = counts
        result["peak_per_100ms"] = peak
        result["mean_per_100ms"] = mean
        result["peak_over_mean"] = peak / mean if mean else math.nan
        # the herd as the server saw it: accepted connections per 100 ms after the drop
        accepts = json.loads(await trio.to_thread.run_sync(server.command, "accepts"))
        a_counts, a_peak, a_mean = _rate(accepts)
        result["accept_bins_per_100ms"] = a_counts
        result["accept_peak_over_mean"] = a_peak / a_mean if a_mean else math.nan
        missing = [sid for sid in sids if retrieved.get(sid) != "ok"]
        gaps = 0
        for sid in sids:
            got = seqs[sid]
            gaps += sum(1 for a, b in zip(got, got[1:]) if b != a + 1) + (1 if got and got[0] != 1 else 0)
        result["lost_items"] = len(missing)
        result["lost_item_examples"] = {sid: retrieved.get(sid, "no answer") for sid in missing[:5]}
        result["seq_gaps"] = gaps
        result["router_dropped"] = fleet.router.dropped + everything.dropped
        result["lost_events"] = len(missing) + gaps + result["router_dropped"]
        result["restarts"] = sum(s.restarts for s in fleet.statuses().values())
        everything.close()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=120.0, help="per phase, seconds")
    p.add_argument("--backoff-base", type=float, default=Backoff().base,
                   help="first reconnect is jittered over [0, base] s (the fleet default: %(default)s)")
    p.add_argument("--drop-mode", choices=("close", "abort"), default="close",
                   help="close: close frame 1011 to all at once; abort: TCP shutdown without a close "
                        "frame (the embedded server finds each socket by scanning its descriptors, "
                        "O(N) per connection, so 1,000 aborts are spread over seconds)")
    p.add_argument("--json-out", default=None)
    p.add_argument("--server-engine", choices=("lean", "hypercorn"), default="lean",
                   help="the embedded server's HTTP/WebSocket engine (EmbeddedServer.engine)")
    args = p.parse_args(argv)
    env = C.environment()
    print(f"reconnect_storm: {args.sessions} sessions, drop mode {args.drop_mode}, backoff base "
          f"{args.backoff_base} s, {args.repeats} repeats, load {env['loadavg_start']}")
    runs = []
    for rep in range(args.repeats):
        with C.server_process(["--engine", args.server_engine]) as server:
            r = trio.run(storm, server, args.sessions, args.timeout, args.drop_mode, args.backoff_base)
        r["loadavg"] = C.loadavg()[0]
        runs.append(r)
        print(f"  rep {rep}: connect all {r['connect_all_s']:.2f} s; after the drop ({r['server_answer']}): "
              f"disconnects seen {r['drop_seen_first_s']:.2f}..{r['drop_seen_last_s']:.2f} s, "
              f"{r['back']}/{args.sessions} back in {r['time_to_all_back_s']:.2f} s, peak "
              f"{r['peak_per_100ms']}/100ms vs mean {r['mean_per_100ms']:.1f}/100ms "
              f"({r['peak_over_mean']:.2f}x; server accepts peak/mean {r['accept_peak_over_mean']:.2f}x); lost items {r['lost_items']}, seq gaps {r['seq_gaps']}, "
              f"router drops {r['router_dropped']}; client CPU {r['client_cpu_s']:.2f} s; "
              f"load {r['loadavg']:.2f}", flush=True)
    back = C.summary([r["time_to_all_back_s"] for r in runs])
    peak = C.summary([r["peak_over_mean"] for r in runs])
    accept_peak = C.summary([r["accept_peak_over_mean"] for r in runs])
    lost = sum(r["lost_events"] for r in runs)
    everyone = all(r["all_back"] for r in runs)
    report = {"benchmark": "reconnect_storm", "env": {**env, "loadavg_end": C.loadavg()},
              "args": vars(args), "runs": runs,
              "summary": {"time_to_all_back_s": back, "peak_over_mean": peak,
                          "accept_peak_over_mean": accept_peak,
                          "lost_events_total": lost, "all_back_every_run": everyone}}
    line = (f"SUMMARY reconnect_storm: {args.sessions} sessions, all back in {C.fmt(back, digits=2)} s "
            f"(every run: {everyone}), peak/mean reconnects per 100 ms {C.fmt(peak, digits=2)} "
            f"(server accepts {C.fmt(accept_peak, digits=2)}), lost events {lost} "
            f"(median [min..max] over {args.repeats}; load {env['loadavg_start'][0]:.2f})")
    report["summary_line"] = line
    C.write_json(args.json_out, report)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
