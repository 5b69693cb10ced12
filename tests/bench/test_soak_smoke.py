"""Bounded runs of the long-run benchmarks (issue 20): soak.py and heap_profile.py still run.

The soak here lasts 20 s with 4 sessions, a client drop every 5 s and one server restart: it
checks the harness (two processes, restarts, sampling, verdict), not memory slopes, which need
the real run (``python3 bench/soak.py --duration 2h --sessions 100``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_soak_runs_two_processes_through_drops_and_a_server_restart(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--duration", "20s", "--sessions", "4",
         "--sample-s", "5", "--warmup", "5s", "--drop-every", "5s", "--restart-every", "10s",
         "--max-slope", "1e9", "--json-out", str(out)],
        capture_output=True, text=True, timeout=240, cwd=str(ROOT))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "SUMMARY pass"
    figures = json.loads(out.read_text())
    assert figures["restarts"] >= 1 and figures["sessions_failed"] == 0
    assert figures["turns_failed"] == 0 and figures["reconnect_succeeded"] >= 1
    assert all(client and server for _, client, server in figures["samples"][1:])


def test_heap_profile_prints_growth_by_line() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "heap_profile.py"), "--sessions", "3",
         "--rounds", "1", "--top", "3"],
        capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sessions ended between the snapshots" in done.stdout
    assert "top growth, stand-in:" in done.stdout
