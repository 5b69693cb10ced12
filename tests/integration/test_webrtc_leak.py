"""Open and close a WebRTC session many times: nothing hangs and nothing grows.

Each cycle adds a WebRTC session to a fleet (client and embedded server in this process, one
trio-asyncio loop), waits until it is connected, removes it and waits until the server has
ended the call. After a warm-up (thread pools and caches filled), the test checks that these do
not grow:

* threads (``threading.enumerate()``): aiortc's decoder thread per call must be joined:
  **no growth at all** outside the encoder pool, which fills up to its bound (2 threads,
  ``rtc-exec_*``) and stays there (trio's idle ``to_thread`` workers are not counted);
* trio tasks (counted by walking the task tree from the root task): **no growth at all**;
* memory, as Python allocations traced by ``tracemalloc``: **under 32 KiB per cycle** on
  average (a session that leaked its peer connection, call or records would cost hundreds of
  KiB); RSS is reported alongside, for information (allocator noise makes it a poor bound).

The server keeps records of closed connections (``record_limit``): it is set to 5 so the
bounded history does not count as growth. Every cycle is bounded by ``fail_after``.
"""

from __future__ import annotations

import gc
import os
import threading
import tracemalloc

import pytest
import trio

pytest.importorskip("aiortc", reason="needs the webrtc extra: pip install -e .[webrtc]")

from actors.exits import ExitReason
from orchestrator.fleet import open_fleet
from standin import EmbeddedServer

KEY = "sk-local-webrtc-leak"
WARMUP = 5
BYTES_PER_CYCLE = 32 * 1024


def count_tasks() -> int:
    count, stack = 0, [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def threads() -> tuple[int, int]:
    """(threads outside the encoder pool, encoder pool threads). trio's own idle worker
    threads (``to_thread`` keeps them ~10 s for reuse) are not counted."""
    names = [t.name for t in threading.enumerate() if not t.name.startswith("Trio thread")]
    pool = sum(name.startswith("rtc-exec") for name in names)
    return len(names) - pool, pool


def measure() -> tuple[tuple[int, int], int, int, int]:
    gc.collect()
    return threads(), count_tasks(), tracemalloc.get_traced_memory()[0], rss_bytes()


@pytest.mark.parametrize("cycles", [20, pytest.param(100, marks=pytest.mark.slow)])
async def test_open_close_cycles_do_not_leak(cycles):
    server = EmbeddedServer(api_keys={KEY}, record_limit=5)
    tracemalloc.start()
    try:
        async with open_fleet(server=server, api_key=KEY, webrtc=True, seed=4) as fleet:

            async def cycle() -> None:
                # 60 s: a call normally ends at once; if the client's bounded close could not
                # finish (a starved CPU), the server notices when ICE consent fails (~30 s)
                with trio.fail_after(60):
                    sid = await fleet.add_session(transport="webrtc")
                    await fleet.wait_connected(sid)
                    calls = list(server.calls.values())
                    assert len(calls) == 1
                    status = await fleet.remove_session(sid, forget=True)
                    await calls[0].ended.wait()
                assert status.last_exit is not None and status.last_exit.reason is ExitReason.NORMAL
                assert fleet.links == {} and server.calls == {}

            for _ in range(WARMUP):
                await cycle()
            threads0, tasks0, traced0, rss0 = measure()
            for _ in range(cycles):
                await cycle()
            threads1, tasks1, traced1, rss1 = measure()
            assert fleet.keys.mints == 1  # the cached secret served every cycle
    finally:
        tracemalloc.stop()
    per_cycle = (traced1 - traced0) / cycles
    print(f"\n{cycles} cycles: threads {threads0} -> {threads1}, trio tasks {tasks0} -> {tasks1}, "
          f"traced Python memory {per_cycle / 1024:+.1f} KiB/cycle, "
          f"RSS {(rss1 - rss0) / 2**20:+.1f} MiB")
    assert threads1[0] <= threads0[0] and threads1[1] <= 2
    assert tasks1 <= tasks0
    assert per_cycle < BYTES_PER_CYCLE
    assert server.stats.calls_answered == server.stats.calls_ended == cycles + WARMUP
