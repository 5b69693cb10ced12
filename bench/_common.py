"""Shared helpers for the bench scripts: the embedded server in its own process, process CPU
and memory from /proc, statistics over repeats, PCM16 test audio, JSON output.

Not a public API: the scripts in ``bench/`` import it as a sibling module.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")

RATE = 24_000
CHUNK_MS = 20
CHUNK_BYTES = RATE * 2 * CHUNK_MS // 1000  # 960: a multiple of 3, so base64 has no padding


# -- process figures ------------------------------------------------------------------------


def proc_cpu(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default), from /proc."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def proc_rss(pid: int | None = None) -> int:
    """Resident set size in bytes."""
    with open(f"/proc/{pid or 'self'}/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def loadavg() -> list[float]:
    return [float(x) for x in os.getloadavg()]


# -- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    data = sorted(values)
    k = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and range of repeated measurements."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def fmt(s: dict[str, float], scale: float = 1.0, digits: int = 1) -> str:
    if not s.get("n"):
        return "n/a"
    m, lo, hi = s["median"] * scale, s["min"] * scale, s["max"] * scale
    return f"{m:.{digits}f} [{lo:.{digits}f}..{hi:.{digits}f}]"


def ratio(a: dict[str, float], b: dict[str, float]) -> float:
    if not a.get("n") or not b.get("n") or not b["median"]:
        return math.nan
    return a["median"] / b["median"]


# -- audio ----------------------------------------------------------------------------------


def pcm_chunks_b64(tone_ms: int = 1000, silence_ms: int = 1000, hz: float = 440.0,
                   amplitude: float = 0.3) -> list[str]:
    """One turn of base64 PCM16 24 kHz chunks of 20 ms: a tone (server VAD hears speech),
    then silence (the VAD ends the turn and the server answers with paced audio)."""
    import numpy as np

    n = RATE * tone_ms // 1000
    t = np.arange(n) / RATE
    tone = (amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()
    pcm = tone + bytes(RATE * 2 * silence_ms // 1000)
    return [base64.b64encode(pcm[i:i + CHUNK_BYTES]).decode("ascii")
            for i in range(0, len(pcm), CHUNK_BYTES)]


# -- the embedded server in its own process ---------------------------------------------------


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[str], url: str, key: str):
        self.proc = proc
        self.url = url
        self.key = key

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command(self, line: str, timeout: float = 30.0) -> str:
        """Send one command line to bench/_server.py and return its one-line answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()


@contextmanager
def server_process(extra: Sequence[str] = ()) -> Iterator[ServerProcess]:
    """Start ``bench/_server.py`` (``run_server`` on 127.0.0.1 port 0) and read its URL."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "_server.py"), *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 2:
            raise RuntimeError(f"bench server did not start (got {line!r})")
        yield ServerProcess(proc, line[0], line[1])
    finally:
        if proc.stdin:
            try:
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_worker(argv: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run a worker process that prints one JSON object as its last stdout line."""
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT))
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout)[-2000:]
        return {"error": f"worker exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if not path:
        return
    def clean(o: Any) -> Any:
        if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o
    Path(path).write_text(json.dumps(clean(data), indent=2) + "\n")


def environment() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "loadavg_start": loadavg(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def print_compare(name: str, title: str, rows: dict[str, dict[str, float]], digits: int,
                  json_out: str | None) -> str:
    """Print an A/B benchmark's rows (``this`` and, with ``--compare``, ``baseline``), the
    this/baseline ratios and its SUMMARY line; write them as JSON to ``json_out``; return the
    SUMMARY line."""
    print(f"{title}; load {os.getloadavg()[0]:.2f}")
    for row_name, row in rows.items():
        print(f"  {row_name:<9} " + "  ".join(f"{k} {v:6.{digits}f}" for k, v in row.items()))
    ratios = {}
    if "baseline" in rows:
        ratios = {k: rows["this"][k] / rows["baseline"][k] for k in rows["this"]}
        print("  this/baseline " + "  ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    line = (f"SUMMARY {name}: " + ", ".join(f"{k} {v:.{digits}f} us" for k, v in rows["this"].items())
            + ("; this/baseline " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()) if ratios else ""))
    print(line)
    if json_out:
        Path(json_out).write_text(json.dumps({
            "benchmark": name, "rows": rows, "ratios": ratios, "summary_line": line,
            "env": {"loadavg_start": list(os.getloadavg()), "python": sys.version.split()[0]},
        }, indent=2) + "\n")
    return line


def add_compare_options(parser: Any, rounds: int) -> None:
    """The options of an A/B benchmark that times this checkout's code and another's."""
    parser.add_argument("--root", default=None, help="time this checkout's code instead")
    parser.add_argument("--compare", default=None, metavar="DIR", help="also time DIR's code")
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--rounds", type=int, default=rounds, help="best of this many rounds")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def compare_rows(script: str, args: Any, worker_args: Sequence[str]) -> dict[str, dict[str, float]]:
    """Run ``script --worker`` with ``worker_args`` on this tree (or ``--root``) and, with
    ``--compare``, on that tree: each in a subprocess with the tree on ``sys.path``; its last
    stdout line is its JSON row."""
    def run(root: Path) -> dict[str, float]:
        done = subprocess.run([sys.executable, str(Path(script).resolve()), "--worker", *worker_args],
                              env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True,
                              text=True, cwd=str(root), check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    rows = {"this": run(Path(args.root).resolve() if args.root else ROOT)}
    if args.compare:
        rows["baseline"] = run(Path(args.compare).resolve())
    return rows


#: a py-spy sample whose innermost frame is trio's epoll wait is not CPU (py-spy counts a woken
#: thread that waits for a CPU as active): left out of every breakdown
PY_SPY_WAITING = "EpollIOManager.get_events"


def folded_breakdown(collapsed: os.PathLike[str] | str, parts: Sequence[tuple[str, Sequence[str]]],
                     rest: str) -> tuple[int, dict[str, int], dict[str, int], dict[str, int]]:
    """A py-spy ``--format raw`` (folded stacks) file's samples: total, per part (the first of
    ``parts`` whose needles appear in a stack's frames, else ``rest``), own time per function
    (leaf) and inclusive time per function. Samples waiting in trio's epoll are left out."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    by_part: dict[str, int] = {}
    total = 0
    for line in Path(collapsed).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        if frames[-1].startswith(PY_SPY_WAITING):
            continue
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
        for name, needles in parts:
            if any(needle in f for f in frames for needle in needles):
                break
        else:
            name = rest
        by_part[name] = by_part.get(name, 0) + n
    return total, by_part, own, inclusive


def function_lines(own: dict[str, int], inclusive: dict[str, int], total: int, top: int) -> list[str]:
    """A breakdown's tail: the ``top`` functions by own (leaf) time, then by inclusive time, as
    shares of ``total`` samples."""
    lines = ["", "own time:"]
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / total:6.1f}%  {f}")
    lines += ["", "inclusive time:"]
    for f, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / total:6.1f}%  {f}")
    return lines
