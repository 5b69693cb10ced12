"""router: events/s and µs per event from an actor to subscribers, in one trio process.

Path measured (as in a fleet): an actor-like publisher calls ``SessionLink.emit(SERVER, payload)``
(stamping: seq, both clocks, a frozen ``ConnectionEvent``) -> the fleet's publish callback
(``Fleet._publish``: router + state watchers) -> ``Router.publish`` (filter, bounded channel per
subscriber) -> subscriber tasks ``async for event in sub``.  The publisher emits a burst of
``--batch`` events, then yields (a checkpoint), as an actor's reader does per received frame batch.

Baseline in the same run: the same publisher/subscriber tasks over bare trio memory channels
(``send_nowait`` / ``async for``), no stamping, no router.

Usage::

    python bench/router.py --events 200000 --repeats 5 --json-out router.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402
import trio  # noqa: E402

from actors.events import EventKind, Transport  # noqa: E402
from actors.link import SessionLink  # noqa: E402
from actors.proto.client import ClientCore  # noqa: E402
from orchestrator.fleet import Fleet  # noqa: E402
from orchestrator.router import Router  # noqa: E402

PAYLOAD = {"type": "response.output_audio.delta", "event_id": "event_1", "response_id": "resp_1",
           "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": "AAAA" * 1600}


async def _drain(receive, receive_nowait, events: int) -> int:
    """A subscriber: wait for one event, then take whatever else is queued (one wake-up per
    burst, as a consumer that keeps up does)."""
    n = 0
    while n < events:
        await receive()
        n += 1
        while n < events:
            try:
                receive_nowait()
            except trio.WouldBlock:
                break
            n += 1
    return n


async def run_rtfleet(events: int, subscribers: int, batch: int) -> dict[str, float]:
    router = Router()
    fleet = Fleet(None, "ws://bench", None, router, None)  # only its publish callback is used
    link = SessionLink("s00001", Transport.WEBSOCKET, ClientCore(), fleet._publish)
    subs = [router.subscribe(buffer=batch * 2) for _ in range(subscribers)]
    got = [0] * subscribers
    emit = link.emit
    kind = EventKind.SERVER

    async def consume(i: int) -> None:
        got[i] = await _drain(subs[i].receive, subs[i].receive_nowait, events)

    async with trio.open_nursery() as nursery:
        for i in range(subscribers):
            nursery.start_soon(consume, i)
        await trio.sleep(0)
        t0, c0 = time.perf_counter(), time.process_time()
        sent = 0
        while sent < events:
            for _ in range(min(batch, events - sent)):
                emit(kind, PAYLOAD)
            sent += batch
            await trio.sleep(0)
    t1, c1 = time.perf_counter(), time.process_time()
    dropped = sum(s.dropped for s in subs)
    assert got == [events] * subscribers and dropped == 0, (got, dropped)
    return {"wall_s": t1 - t0, "cpu_s": c1 - c0}


async def run_baseline(events: int, subscribers: int, batch: int) -> dict[str, float]:
    chans = [trio.open_memory_channel(batch * 2) for _ in range(subscribers)]
    sends = [s for s, _ in chans]
    got = [0] * subscribers

    async def consume(i: int) -> None:
        got[i] = await _drain(chans[i][1].receive, chans[i][1].receive_nowait, events)

    async with trio.open_nursery() as nursery:
        for i in range(subscribers):
            nursery.start_soon(consume, i)
        await trio.sleep(0)
        t0, c0 = time.perf_counter(), time.process_time()
        sent = 0
        while sent < events:
            for _ in range(min(batch, events - sent)):
                for s in sends:
                    s.send_nowait(PAYLOAD)
            sent += batch
            await trio.sleep(0)
    t1, c1 = time.perf_counter(), time.process_time()
    assert got == [events] * subscribers
    return {"wall_s": t1 - t0, "cpu_s": c1 - c0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--subscribers", default="1,10")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    env = C.environment()
    report: dict[str, Any] = {"benchmark": "router", "env": env, "args": vars(args), "results": {}}
    print(f"router: {args.events} events, batch {args.batch}, {args.repeats} repeats, "
          f"load {env['loadavg_start']}")
    line_parts = []
    for n_sub in [int(s) for s in args.subscribers.split(",")]:
        rt: list[float] = []
        base: list[float] = []
        for rep in range(args.repeats):
            # alternate the order so slow drift of the machine hits both alike
            pair = [("rt", run_rtfleet), ("base", run_baseline)]
            for name, fn in (pair if rep % 2 == 0 else pair[::-1]):
                r = trio.run(fn, args.events, n_sub, args.batch)
                (rt if name == "rt" else base).append(args.events / r["cpu_s"] if r["cpu_s"] else math.nan)
        rt_s, base_s = C.summary(rt), C.summary(base)
        us = C.summary([1e6 / x for x in rt])
        us_base = C.summary([1e6 / x for x in base])
        ratio = C.ratio(us, us_base)
        report["results"][str(n_sub)] = {
            "rtfleet_events_per_s": rt_s, "baseline_events_per_s": base_s,
            "rtfleet_us_per_event": us, "baseline_us_per_event": us_base,
            "ratio_us_per_event_rtfleet_over_baseline": ratio,
        }
        print(f"  {n_sub} subscriber(s): rtfleet {C.fmt(rt_s, digits=0)} events/s "
              f"({C.fmt(us, digits=2)} us/event); bare memory channel {C.fmt(base_s, digits=0)} "
              f"events/s ({C.fmt(us_base, digits=2)} us/event); ratio {ratio:.2f}x")
        line_parts.append(f"{n_sub} sub: {rt_s['median']:.0f} ev/s ({ratio:.2f}x bare channel)")
    report["env"]["loadavg_end"] = C.loadavg()
    line = ("SUMMARY router: " + "; ".join(line_parts)
            + f" (events/s per CPU-second; load {env['loadavg_start'][0]:.2f})")
    report["summary_line"] = line
    C.write_json(args.json_out, report)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
