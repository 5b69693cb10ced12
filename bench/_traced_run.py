"""``rtfleet`` under tracemalloc, dumping snapshots at given seconds: the soak's heap profile.

    python3 bench/_traced_run.py DIR 600,1500 run scenario.yaml …

``RTFLEET_TRACE_MODE=stats`` traces nothing (no cost between samples): at each time it writes
``DIR/stats-<seconds>.json`` with the resident size, pymalloc's figures (bytes in allocated
blocks against arenas held: live objects against fragmentation) and the count and shallow size
of the gc-tracked objects by type; ``bench/heap_diff.py --stats A B`` compares two.

Tracing starts at the first time (``RTFLEET_TRACE_FRAMES`` frames a trace, default 6), so the
warm-up runs at full speed and the snapshots hold only what was allocated after it: what is
still alive in the last one and grew since the first is what the run accumulates. Each snapshot is ``DIR/snap-<seconds>.pickle`` (taken after a ``gc.collect()``, from a thread,
so the run itself is not changed); ``bench/heap_diff.py`` compares two of them.
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path


def _pymalloc() -> dict[str, int]:
    """pymalloc's own figures (``sys._debugmallocstats`` writes them on fd 2)."""
    with tempfile.TemporaryFile("w+") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read()
    figures = {}
    for name, key in (("arenas_current", "# arenas allocated current"),
                      ("allocated_blocks_bytes", "# bytes in allocated blocks"),
                      ("available_blocks_bytes", "# bytes in available blocks"),
                      ("arena_bytes", "Total")):
        m = re.search(re.escape(key) + r"\s*=\s*([\d,]+)", text)
        if m:
            figures[name] = int(m.group(1).replace(",", ""))
    return figures


def _stats(out: Path, at: list[float], start: float) -> None:
    for when in at:
        time.sleep(max(0.0, start + when - time.monotonic()))
        gc.collect()
        types: dict[str, list[int]] = {}
        for obj in gc.get_objects():
            entry = types.setdefault(type(obj).__qualname__, [0, 0])
            entry[0] += 1
            entry[1] += sys.getsizeof(obj)
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        (out / f"stats-{int(when)}.json").write_text(json.dumps(
            {"t": when, "rss": rss, "pymalloc": _pymalloc(), "types": types}))
        print(f"traced: stats at {when:g} s", file=sys.stderr, flush=True)


def _snapshots(out: Path, at: list[float], start: float, frames: int) -> None:
    for when in at:
        time.sleep(max(0.0, start + when - time.monotonic()))
        if not tracemalloc.is_tracing():
            tracemalloc.start(frames)
        gc.collect()
        tracemalloc.take_snapshot().dump(str(out / f"snap-{int(when)}.pickle"))
        print(f"traced: snapshot at {when:g} s", file=sys.stderr, flush=True)


def main() -> None:
    out, at, rest = Path(sys.argv[1]), [float(t) for t in sys.argv[2].split(",")], sys.argv[3:]
    out.mkdir(parents=True, exist_ok=True)
    frames = int(os.environ.get("RTFLEET_TRACE_FRAMES", "6"))
    if os.environ.get("RTFLEET_TRACE_MODE") == "stats":
        threading.Thread(target=_stats, args=(out, at, time.monotonic()), daemon=True).start()
    else:
        threading.Thread(target=_snapshots, args=(out, at, time.monotonic(), frames),
                         daemon=True).start()
    sys.argv = ["rtfleet", *rest]
    from orchestrator.cli import main_entry
    main_entry()


if __name__ == "__main__":
    main()
