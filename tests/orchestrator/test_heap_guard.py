"""The long-run guard warns once when the process passes its size, naming the biggest store."""

from __future__ import annotations

import io
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from orchestrator.heap_guard import check_heap, malloc_trim, rss_bytes, watch_heap

ROOT = Path(__file__).resolve().parents[2]


def test_below_the_limit_says_nothing_and_above_names_the_biggest_store():
    stores = [("run timeline", 3 * 2**20, "in 900 slots"), ("server records", 15 * 2**20, "in 812")]
    assert check_heap(100 * 2**20, 1024, lambda: stores) is None
    message = check_heap(1100 * 2**20, 1024, lambda: stores)
    assert message is not None
    assert "1100 MB" in message and "server records, 15.0 MB in 812" in message


async def test_the_watch_warns_once_then_stops(autojump_clock):
    sizes = iter([10, 10, 2000, 3000])
    out = io.StringIO()
    asked = []

    def stores():
        asked.append(trio.current_time())
        return [("fleet sessions", 2 * 2**20, "100 sessions")]

    with trio.fail_after(60):
        await watch_heap(100, stores, every=5.0, size=lambda: next(sizes) * 2**20, out=out,
                         trim=None)
    assert out.getvalue().count("warning") == 1
    assert "fleet sessions" in out.getvalue()
    assert asked == [10.0]  # stores are looked at only once the size passed the limit


async def test_the_watch_trims_every_minute_before_and_after_its_warning(autojump_clock):
    sizes = iter([10] * 20 + [2000] * 1000)
    out = io.StringIO()
    trims = []
    with trio.move_on_after(300):
        await watch_heap(100, lambda: [], every=5.0, size=lambda: next(sizes) * 2**20, out=out,
                         trim=lambda: trims.append(trio.current_time()))
    assert out.getvalue().count("warning") == 1  # at 100 s
    assert trims == [60.0, 120.0, 180.0, 240.0]  # on time before the warning and after it


async def test_a_limit_of_infinity_never_warns_but_still_trims(autojump_clock):
    out = io.StringIO()
    trims = []
    with trio.move_on_after(130):
        await watch_heap(math.inf, lambda: [], size=lambda: 2**40, out=out,
                         trim=lambda: trims.append(1))
    assert out.getvalue() == "" and len(trims) == 2


@pytest.mark.skipif(malloc_trim is None, reason="glibc's malloc_trim: Linux with glibc only")
def test_malloc_trim_gives_freed_heap_pages_back():
    # 200 MB of 3 KB blocks (below glibc's mmap threshold: they live in its heap), then keep
    # one in ten: the freed pages stay resident until trimmed
    blocks = [bytearray(3000) for _ in range(70_000)]
    for block in blocks:
        block[::512] = b"x" * len(block[::512])  # touch every page
    kept = blocks[::10]
    del blocks
    before = rss_bytes()
    malloc_trim()
    after = rss_bytes()
    assert before - after > 100 * 2**20, (before / 2**20, after / 2**20)
    assert len(kept) == 7000


def test_rtfleet_serve_warns_with_the_servers_stores():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "serve", "--port", "0",
                             "--heap-warn-mb", "1"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "passed --heap-warn-mb 1" in line and "biggest store: " in line
