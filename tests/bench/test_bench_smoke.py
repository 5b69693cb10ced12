"""Bounded runs of every ``bench/`` script: they still run, print their summary line and write
valid JSON.  This catches breakage only; it does not judge speed (CI machines are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "ws_fleet": ["--sessions", "3", "--repeats", "1", "--duration", "1", "--warmup", "0.5"],
    "router": ["--events", "2000", "--repeats", "1"],
    "ws_codec": ["--messages", "200", "--repeats", "1"],
    "reconnect_storm": ["--sessions", "5", "--repeats", "1", "--timeout", "30"],
    "idle_memory": ["--sessions", "4", "--traced", "2", "--repeats", "1", "--settle", "0.1"],
    "workers_scaling": ["--sessions", "2", "--repeats", "1", "--duration", "1", "--warmup", "0.5"],
    "server_cost": ["--sessions", "3", "--repeats", "1", "--duration", "1", "--warmup", "0.5",
                    "--client", "raw"],
    "append_path": ["--rounds", "1", "--appends", "200"],
    "client_path": ["--rounds", "1", "--sessions", "3", "--ticks", "40"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bench_script_runs(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *CASES[name], "--json-out", str(out)],
        capture_output=True, text=True, timeout=150, cwd=str(ROOT),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(f"SUMMARY {name}:"), done.stdout[-3000:]
    assert "ERROR" not in done.stdout, done.stdout[-3000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == name
    assert report["summary_line"] == last
    assert report["env"]["loadavg_start"]
