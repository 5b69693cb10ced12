"""Soak: a mixed text/audio fleet with churn and faults against `rtfleet serve` in its own
process, for a long time; prints both processes' memory over time and its slope.

    python3 bench/soak.py --duration 2h --sessions 100     # the real run
    python3 bench/soak.py --duration 10m --sessions 40     # the issue's 10-minute table
    python3 bench/soak.py --duration 90s --sessions 10 --sample-s 10 --warmup 30s   # a smoke

What runs: `rtfleet serve` (the stand-in) in one process and `rtfleet run` in another, half
text chatters and half audio talkers (`play` a WAV with server VAD, then wait for the answer),
each session ending after a few turns and replaced at once (closed-model churn: every minute
a few dozen sessions end and start). Faults: the run drops 50% of the connections every
`--drop-every` (client side); the server runs its own fault file (`rtfleet serve --faults`): an
in-process `kill_server` every `--kill-every` (every connection dies, the port refuses for 2 s)
and `expire_keys` every `--expire-every` (every client secret issued expires: sessions re-mint);
and this script kills the server process (SIGKILL) every `--restart-every` and starts it again
on the same port (every connection dies; the secrets it had issued are gone). The server's slope
is measured within each process life (after the warm-up) and the worst life is reported. Every `--sample-s` it reads both
processes' resident size (and its anonymous part, RSS less mapped files, whose pages come and
go as code first runs: it tells a heap that grows from a binary that is paged in); at the end it
prints the samples, the slope after `--warmup` (least squares, MB per hour) for each, and the run's verdict: sessions failed, turns failed and lost,
reconnect success rate. Exit 0 when the run passed and both slopes are under `--max-slope`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "scenarios" / "audio" / "hello.wav"


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(h|m|s)?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 2h, 10m or 90s, not {text!r}")
    return float(match.group(1)) * {"h": 3600, "m": 60, "s": 1, None: 1}[match.group(2)]


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def anon_mb(pid: int) -> float | None:
    """Anonymous resident memory (the heap and other private allocations; RSS less the mapped
    files, whose pages come and go as code is first run)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def worst_life_slope(points: list[tuple[float, float | None]], lives: list[float],
                     warmup: float) -> tuple[float | None, list[float]]:
    """The server's slope within each process life (after the warm-up counted from that
    life's start), and the worst of them."""
    slopes = []
    for index, born in enumerate(lives):
        dies = lives[index + 1] if index + 1 < len(lives) else float("inf")
        slope = slope_mb_per_hour([(t, v) for t, v in points
                                   if v is not None and born + warmup <= t < dies])
        if slope is not None:
            slopes.append(slope)
    return (max(slopes) if slopes else None), slopes


def slope_mb_per_hour(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in points) / var * 3600


def scenario(duration: float, sessions: int, drop_every: float) -> str:
    drops = "\n".join(f"  - {{at: {int(t)}s, action: drop_connections, percent: 50}}"
                      for t in range(int(drop_every), int(duration), int(drop_every))) if drop_every > 0 else ""
    half = max(1, sessions // 2)
    return f"""name: soak
description: mixed text/audio churn with drops, against rtfleet serve in its own process
seed: 11
duration_limit: {int(duration + 120)}s
target: embedded            # replaced by --target (the serve process)
session:
  output_modalities: [audio]
  input_format: pcm16
  output_format: {{type: audio/pcm, rate: 24000}}
  turn_detection: {{type: server_vad, threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 400}}
populations:
  - name: chatters
    transport: websocket
    script: chat
    phases:
      - {{name: hold, duration: {int(duration)}s, concurrency: {half}}}
  - name: talkers
    transport: websocket
    script: talk
    phases:
      - {{name: hold, duration: {int(duration)}s, concurrency: {sessions - half}}}
scripts:
  chat:
    - repeat: 3
      steps:
        - say: Tell me a one-line fact.
          timeout: 20s
        - pause: 1s
  talk:
    - repeat: 2
      steps:
        - play: {HELLO}
          realtime: true
        - wait_response: {{timeout: 20s}}
        - pause: 1s
{"faults:" if drops else ""}
{drops}
thresholds:
  - sessions.failed == 0
  - turns.failed == 0
  - reconnect.success_rate == 1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_faults(kill_every: float, expire_every: float) -> str:
    """The server's own faults (``rtfleet serve --faults``): an in-process kill (every
    connection dies, the port refuses for 2 s) and an expiry of every client secret issued."""
    period = int(kill_every or expire_every)
    lines = ["faults:"]
    if kill_every:  # each period ends with a kill (at its last second)
        lines.append(f"  - {{at: {period - 1}s, action: kill_server, restart_after: 2s}}")
    if expire_every:
        lines += [f"  - {{at: {int(t)}s, action: expire_keys}}"
                  for t in range(int(expire_every), period, int(expire_every))]
    return "\n".join(lines + [f"repeat: {period}s"]) + "\n"


def start_server(port: int, key: str, faults: Path | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "serve", "--port", str(port), "--api-key", key,
         "--models", "*", "--webrtc", "off", *(["--faults", str(faults)] if faults else [])], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "rtfleet embedded server on http://…": listening
    if "server on" not in line:
        raise SystemExit(f"rtfleet serve did not start: {line!r}")
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=seconds, default=seconds("10m"))
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--sample-s", type=seconds, default=30.0)
    parser.add_argument("--warmup", type=seconds, default=seconds("10m"))
    parser.add_argument("--drop-every", type=seconds, default=60.0,
                        help="the client drops half its connections (0: never)")
    parser.add_argument("--restart-every", type=seconds, default=seconds("40m"),
                        help="the server process is killed (SIGKILL) and started again (0: never)")
    parser.add_argument("--kill-every", type=seconds, default=seconds("15m"),
                        help="the server's in-process kill_server fault (0: none)")
    parser.add_argument("--expire-every", type=seconds, default=seconds("5m"),
                        help="the server's expire_keys fault (0: none)")
    parser.add_argument("--max-slope", type=float, default=5.0, help="MB/hour allowed per process")
    parser.add_argument("--json-out")
    parser.add_argument("--trace-dir", help="run the client under tracemalloc, snapshots here "
                        "(bench/_traced_run.py; compare with bench/heap_diff.py)")
    parser.add_argument("--trace-at", default="600,1500", help="snapshot times, seconds")
    args = parser.parse_args()
    warmup = min(args.warmup, args.duration / 3)
    port, key = free_port(), "sk-soak-" + os.urandom(8).hex()
    url = f"http://127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp(prefix="rtfleet-soak-"))
    (work / "soak.yaml").write_text(scenario(args.duration, args.sessions, args.drop_every))
    faults = None
    if args.kill_every or args.expire_every:
        faults = work / "server-faults.yaml"
        faults.write_text(server_faults(args.kill_every, args.expire_every))
    server = start_server(port, key, faults)
    runner = ([str(ROOT / "bench" / "_traced_run.py"), args.trace_dir, args.trace_at]
              if args.trace_dir else ["-m", "orchestrator"])
    run = subprocess.Popen(
        [sys.executable, *runner, "run", str(work / "soak.yaml"), "--target", url,
         "--out", str(work / "out"), "-q"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": key})
    start = time.monotonic()
    samples: list[tuple[float, float | None, float | None]] = []
    lives: list[float] = [0.0]  # when each server process started
    restarts = 0
    next_sample, next_restart = 0.0, args.restart_every or float("inf")  # 0: never
    print(f"soak: {args.sessions} sessions for {args.duration:g} s against {url} "
          f"(pids run {run.pid}, serve {server.pid}); samples every {args.sample_s:g} s")
    anon: list[tuple[float, float | None, float | None]] = []
    print(f"{'t (s)':>8} {'client MB':>10} {'server MB':>10} {'client anon':>12} {'server anon':>12}")
    try:
        while run.poll() is None:
            now = time.monotonic() - start
            if now >= next_sample:
                sample = (round(now), rss_mb(run.pid), rss_mb(server.pid))
                samples.append(sample)
                anon.append((sample[0], anon_mb(run.pid), anon_mb(server.pid)))
                print(f"{sample[0]:>8} {sample[1] or 0:>10.1f} {sample[2] or 0:>10.1f} "
                      f"{anon[-1][1] or 0:>12.1f} {anon[-1][2] or 0:>12.1f}", flush=True)
                next_sample += args.sample_s
            if now >= next_restart and now < args.duration:
                server.send_signal(signal.SIGKILL)
                server.wait()
                server = start_server(port, key, faults)
                lives.append(time.monotonic() - start)
                restarts += 1
                next_restart += args.restart_every
            time.sleep(min(1.0, max(0.05, next_sample - (time.monotonic() - start))))
        stdout, stderr = run.communicate()
    finally:
        for proc in (run, server):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    after = [s for s in samples if s[0] >= warmup]
    client = slope_mb_per_hour([(t, c) for t, c, _ in after if c is not None])
    # the server process is new after each restart: its slope is measured within each life
    server_slope, life_slopes = worst_life_slope([(t, v) for t, _, v in samples], lives, warmup)
    client_anon = slope_mb_per_hour([(t, c) for t, c, _ in anon if t >= warmup and c is not None])
    server_anon, _ = worst_life_slope([(t, v) for t, _, v in anon], lives, warmup)
    results = {}
    try:
        results = json.loads((work / "out" / "results.json").read_text())
    except (OSError, ValueError):
        pass
    counters = (results.get("summary") or {}).get("counters", {})
    figures = {
        "duration_s": args.duration, "sessions": args.sessions, "restarts": restarts,
        "client_slope_mb_per_h": client, "server_slope_mb_per_h": server_slope,
        "server_life_slopes_mb_per_h": life_slopes,
        "client_anon_slope_mb_per_h": client_anon, "server_anon_slope_mb_per_h": server_anon,
        "verdict": results.get("verdict"), "exit": run.returncode,
        "sessions_started": counters.get("sessions.started"),
        "sessions_failed": counters.get("sessions.failed"),
        "turns_completed": counters.get("turns.completed"),
        "turns_failed": counters.get("turns.failed"), "turns_lost": counters.get("turns.lost", 0),
        "turns_replayed": counters.get("turns.replayed", 0),
        "reconnect_attempts": counters.get("reconnect.attempts"),
        "reconnect_succeeded": counters.get("reconnect.succeeded"),
        "samples": samples, "anon_samples": anon,
    }

    def fmt(value):
        return "n/a" if value is None else f"{value:+.1f}"

    print(f"slope after {warmup:g} s warm-up: client {fmt(client)} MB/h, server "
          f"{fmt(server_slope)} MB/h (worst of {len(life_slopes)} server lives: "
          f"{', '.join(fmt(s) for s in life_slopes) or 'none long enough'})")
    print(f"anonymous memory slope (RSS less mapped files): client {fmt(client_anon)} MB/h, "
          f"server {fmt(server_anon)} MB/h")
    print(f"run: {figures['verdict']} (exit {run.returncode}); sessions {figures['sessions_started']} "
          f"started, {figures['sessions_failed']} failed; turns {figures['turns_completed']} "
          f"completed, {figures['turns_failed']} failed, {figures['turns_lost']} lost, "
          f"{figures['turns_replayed']} replayed; reconnects {figures['reconnect_succeeded']}/"
          f"{figures['reconnect_attempts']}; server restarts {restarts}")
    if run.returncode not in (0, 1):
        print(stderr.strip()[-2000:], file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=1))
    ok = (results.get("verdict") == "pass"
          and all(s is None or s <= args.max_slope for s in (client, server_slope)))
    print("SUMMARY", "pass" if ok else "fail")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
