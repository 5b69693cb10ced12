"""How to host the trio fleet under asyncio: guest mode vs a trio thread (vs plain trio).

    PYTHONPATH=. python3 bench/asyncio_modes.py [--sessions 20] [--asks 10] [--repeat 3]

For each host: ``ask`` round-trip latency (one session, sequential), a burst of concurrent
asks over all sessions (wall time, CPU seconds of the process), and how late the asyncio loop's
own 10 ms ticker runs meanwhile (the cost to the host application).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import trio

import rtfleet.asyncio
from orchestrator.fleet import open_fleet

CONFIG = {"output_modalities": ["text"]}


def _summary(name: str, lat: list[float], burst_wall: float, cpu: float, lags: list[float]) -> str:
    lat_ms = sorted(x * 1000 for x in lat)
    p95 = lat_ms[int(0.95 * (len(lat_ms) - 1))]
    lag = f"ticker lag p99 {sorted(lags)[int(0.99 * (len(lags) - 1))] * 1000:6.2f} ms" if lags else "ticker n/a"
    return (f"{name:7s} ask p50 {statistics.median(lat_ms):6.2f} ms p95 {p95:6.2f} ms | burst "
            f"{burst_wall * 1000:7.1f} ms wall, {cpu * 1000:7.1f} ms CPU | {lag}")


async def _asyncio_case(mode: str, sessions: int, asks: int) -> str:
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    async with rtfleet.asyncio.open_fleet(mode=mode, config=CONFIG) as fleet:
        sids = [await fleet.add_session() for _ in range(sessions)]
        for sid in sids:
            await fleet.wait_connected(sid)
        lat = []
        for i in range(asks * 5):
            t = time.perf_counter()
            await fleet.ask(sids[0], f"hello {i}")
            lat.append(time.perf_counter() - t)
        tick = asyncio.ensure_future(ticker())
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(fleet.ask(sid, f"burst {i}") for sid in sids for i in range(asks)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stop.set()
        await tick
    return _summary(mode, lat, wall, cpu, lags)


async def _trio_case(sessions: int, asks: int) -> str:
    async with open_fleet(config=CONFIG) as fleet:
        sids = [await fleet.add_session() for _ in range(sessions)]
        for sid in sids:
            await fleet.wait_connected(sid)
        lat = []
        for i in range(asks * 5):
            t = time.perf_counter()
            await fleet.ask(sids[0], f"hello {i}")
            lat.append(time.perf_counter() - t)
        cpu0, t0 = time.process_time(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for sid in sids:
                for i in range(asks):
                    nursery.start_soon(fleet.ask, sid, f"burst {i}")
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return _summary("trio", lat, wall, cpu, [])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--asks", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.repeat):
        print(trio.run(_trio_case, args.sessions, args.asks))
        for mode in ("thread", "guest"):
            print(asyncio.run(_asyncio_case(mode, args.sessions, args.asks)))


if __name__ == "__main__":
    main()
