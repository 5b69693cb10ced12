"""timeline-memory: what the run's timeline (``orchestrator.metrics.TimeSeries``) holds as a run
goes on, with today's bound and resolution beside another (by default the earlier 512 slots at
8 buckets an octave), measured with tracemalloc.

Load fed per second of run time, like 100 streaming sessions: 300 samples of frame lateness
(log-normal around 1 ms; a sample of the 5,000 frames a second, enough to reach every bucket
those values fall in), 10 turns (duration, time to first audio and to first text, a counter),
one connect time and one session start.

    python bench/timeline_memory.py [--baseline 512,8] [--seconds 4000]

Not a test: it prints MB held at 2, 10 and 30 minutes and at the end, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MARKS = (120, 600, 1800)


def measure(slots: int | None, group: int | None, seconds: int) -> dict[int, float]:
    import orchestrator.metrics as metrics

    if group is not None:
        metrics.COARSE_GROUP = group
    rng = random.Random(1)
    tracemalloc.start()
    series = metrics.TimeSeries() if slots is None else metrics.TimeSeries(max_slots=slots)
    held: dict[int, float] = {}
    for second in range(seconds):
        now = second + 0.5
        for _ in range(300):
            series.observe("audio.frame_lateness", rng.lognormvariate(-7, 1.5), now)
        for _ in range(10):
            series.observe("turn.duration", rng.lognormvariate(0, 0.5), now)
            series.observe("turn.time_to_first_audio", rng.lognormvariate(-1, 0.5), now)
            series.observe("turn.time_to_first_text", rng.lognormvariate(-1, 0.5), now)
            series.inc("turns.completed", now)
        series.observe("connect.duration", rng.lognormvariate(-3, 0.5), now)
        series.inc("sessions.started", now)
        if second + 1 in MARKS or second + 1 == seconds:
            held[second + 1] = tracemalloc.get_traced_memory()[0] / 2**20
    return held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="512,8", help="max_slots,COARSE_GROUP to compare with")
    parser.add_argument("--seconds", type=int, default=4000)
    parser.add_argument("--only", help=argparse.SUPPRESS)  # one configuration, in a subprocess
    args = parser.parse_args()
    if args.only is not None:
        slots, group = (None, None) if args.only == "default" else map(int, args.only.split(","))
        print(json.dumps(measure(slots, group, args.seconds)))
        return 0
    rows = {}
    for name, only in (("this tree", "default"), (f"baseline {args.baseline}", args.baseline)):
        out = subprocess.run([sys.executable, __file__, "--only", only, "--seconds", str(args.seconds)],
                             check=True, capture_output=True, text=True).stdout
        rows[name] = {int(k): v for k, v in json.loads(out).items()}
    marks = sorted(next(iter(rows.values())))
    print(f"{'':<18}" + "".join(f"{f'{m} s':>10}" for m in marks) + f"{'fill 120-600 s':>16}")
    for name, held in rows.items():
        print(f"{name:<18}" + "".join(f"{held[m]:>8.2f}MB" for m in marks)
              + f"{held[600] - held[120]:>14.2f}MB")
    this, base = rows.values()
    print("ratio this/baseline: " + ", ".join(f"{m} s {this[m] / base[m]:.2f}x" for m in marks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
