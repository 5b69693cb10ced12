"""The long-run guard warns once when the process passes its size, naming the biggest store."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from orchestrator.heap_guard import check_heap, watch_heap

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
        await watch_heap(100, stores, every=5.0, size=lambda: next(sizes) * 2**20, out=out)
    assert out.getvalue().count("warning") == 1
    assert "fleet sessions" in out.getvalue()
    assert asked == [10.0]  # stores are looked at only once the size passed the limit


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
