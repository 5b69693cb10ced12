"""Compare two tracemalloc snapshots of a run (``bench/_traced_run.py``): growth by our line.

    python3 bench/heap_diff.py DIR/snap-600.pickle DIR/snap-1500.pickle [--top 25]

Growth is grouped by the innermost frame in this repository (what allocated, in our terms),
with the full traceback of the biggest groups, so a store that grows with ended sessions shows
its owner.
"""

from __future__ import annotations

import argparse
import tracemalloc
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1]) + "/"


def stats_diff(first: dict, second: dict, top: int) -> None:
    """Two ``RTFLEET_TRACE_MODE=stats`` samples: RSS, pymalloc, objects by type."""
    span = second["t"] - first["t"]
    print(f"{first['t']:g} s -> {second['t']:g} s: RSS {first['rss'] / 2**20:.1f} -> "
          f"{second['rss'] / 2**20:.1f} MB")
    for key, value in second["pymalloc"].items():
        before = first["pymalloc"].get(key, 0)
        print(f"  pymalloc {key}: {before:,} -> {value:,} ({(value - before) / 2**20:+.2f} MB"
              f"{'' if key != 'arenas_current' else ' as counts'})")
    rows = []
    for name, (count, size) in second["types"].items():
        c0, s0 = first["types"].get(name, [0, 0])
        rows.append((size - s0, count - c0, name, count))
    rows.sort(reverse=True)
    print(f"gc-tracked objects by type, shallow size growth over {span:g} s:")
    for size, count, name, now in rows[:top]:
        print(f"  {size / 1024:+10.1f} KiB {count:+9d} objects (now {now:,})  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--stats", action="store_true", help="compare two stats-*.json samples")
    args = parser.parse_args()
    if args.stats:
        import json
        stats_diff(json.loads(Path(args.first).read_text()),
                   json.loads(Path(args.second).read_text()), args.top)
        return
    first = tracemalloc.Snapshot.load(args.first)
    second = tracemalloc.Snapshot.load(args.second)
    growth: dict[tuple[str, int], list] = {}
    for d in second.compare_to(first, "traceback"):
        frame = next((f for f in reversed(d.traceback) if ROOT in f.filename), d.traceback[-1])
        key = (frame.filename.replace(ROOT, ""), frame.lineno)
        entry = growth.setdefault(key, [0, 0, None, 0])
        entry[0] += d.size_diff
        entry[1] += d.count_diff
        if d.size_diff > entry[3]:
            entry[2], entry[3] = d.traceback, d.size_diff
    total = sum(v[0] for v in growth.values())
    print(f"traced heap {sum(s.size for s in first.statistics('filename')) / 2**20:.1f} MB -> "
          f"{sum(s.size for s in second.statistics('filename')) / 2**20:.1f} MB "
          f"(growth {total / 2**20:+.2f} MB)")
    for (name, line), (size, count, tb, _) in sorted(growth.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f"{size / 1024:+10.1f} KiB {count:+8d} blocks  {name}:{line}")
        if tb is not None and size > 64 * 1024:
            for frame in list(tb)[-6:]:
                print(f"{'':>30}{frame.filename.replace(ROOT, '')}:{frame.lineno}")


if __name__ == "__main__":
    main()
