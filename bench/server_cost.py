"""server-cost: what the embedded server spends per streaming session, measured as CPU time.

The server runs in its own process (``bench/_server.py``, as ``bench/ws_fleet.py`` runs it) and a
cheap client drives it from this process (asyncio + the ``websockets`` library, one task per
session, as ``ws_fleet.py``'s ``websockets`` client), N sessions each sending a 20 ms ``input_audio_buffer.append`` of
24 kHz PCM16 50 times a second (1 s of tone, 1 s of silence: server VAD hears a turn every 2 s and
the server answers with paced audio deltas).

Figures are of the server process's CPU time (user + system, /proc), which stays meaningful on a
loaded machine where lateness does not. The main figure is **CPU microseconds per append the
server handled** in the window (its ``client_events_received``, read at the window's edges):
a server that falls behind handles fewer appends than were sent, and per append *sent* (or per
session-second) would flatter it; ``handled/sent`` below 1 says it fell behind. From it, **CPU
milliseconds per session-second** at real time (x 50 appends a second; that includes the
server's events out and its paced audio, which come with the appends). ``--profile DIR`` also
records the server with py-spy (``pip install py-spy``) during one window per N:
``DIR/server-N.txt`` (collapsed stacks) and ``DIR/server-N-top.txt`` (time by category, own time
per function).

Usage::

    python bench/server_cost.py --sessions 100,200,300 --repeats 3 --duration 10
    python bench/server_cost.py --sessions 100,200,300 --compare /work/main   # before/after
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

BENCH = Path(__file__).resolve().parent


def _profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy record of ``pid`` for ``seconds`` in collapsed-stack form (started now)."""
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
         "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


#: where a sample's time goes, by the first of these found on its stack (innermost wins within a
#: category list order: the more specific categories come first)
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("response planning + tone (per turn)", ("_speech_stopped", "_start_response", "Tone.")),
    ("server events out: JSON encode + WebSocket send", ("_Connection._sender", "_send_batch",
                                                         "_Connection._write_now", "send_now")),
    ("base64 decode", ("b64decode", "a2b_base64", "bare_append (standin/model/append.py:40)")),
    ("PCM16 -> float decode", ("AudioFormat.decode",)),
    ("VAD energy per frame", ("EnergyVad.feed", "EnergyVad.feed_pcm16")),
    ("JSON decode of client events (or the bare-append scan)", ("loads (json", "JSONDecoder",
                                                                "bare_append")),
    ("event record (received)", ("_record",)),
    ("model timers and paced audio out (get_timer/handle_timer/poke)", ("get_timer", "handle_timer",
                                                                        "ModelTimer.", "SharedTimer.",
                                                                        "Deadlines.run")),
    ("WebSocket frame parse + unmask", ("Protocol.receive_data", "events_received", "FrameReader.",
                                        "apply_mask")),
    ("message assembly + ASGI dicts", ("MessageAssembler", "_decode (actors")),
    ("rest of the model's append path", ("receive_event", "receive_text", "_on_append", "_append",
                                         "_take_audio")),
    ("socket I/O (recv/send syscalls, trio wrappers)", ("receive_some", "send_all", "_nonblocking_helper",
                                                        "_readable (standin/front/lean.py")),
    ("reader loop + front glue (inline handler, mux)", ("_Connection._reader", "_WebSocket.receive",
                                                        "_WebSocket._read", "_Connection._inline",
                                                        "_WebSocket._readable", "ReadMux.run")),
]


def breakdown(collapsed: Path) -> tuple[int, dict[str, int], dict[str, int], dict[str, int]]:
    """Samples: total, per category, own per function (leaf) and inclusive per function."""
    return C.folded_breakdown(collapsed, CATEGORIES, "trio scheduler and the rest")


def own_time(collapsed: Path, top: int = 40) -> str:
    """A breakdown by category, then own and inclusive time per function."""
    total, cats, own, inclusive = breakdown(collapsed)
    lines = [f"{total} samples (not counting trio's epoll wait)", "", "by category:"]
    for name, n in sorted(cats.items(), key=lambda kv: -kv[1]):
        lines.append(f"{100 * n / total:6.1f}%  {name}")
    lines += C.function_lines(own, inclusive, total, top)
    return "\n".join(lines) + "\n"


async def _client(url: str, key: str, n: int, warmup: float, duration: float,
                  pids: list[int], received: Callable[[], int]) -> dict[str, Any]:
    """N asyncio + websockets sessions streaming appends at real time; the server's CPU is
    sampled at the window's edges (the sum over ``pids``)."""
    import asyncio

    import websockets

    loop = asyncio.get_running_loop()
    chunks = C.pcm_chunks_b64()
    ws_url = url.replace("http", "ws", 1) + "/v1/realtime?model=gpt-realtime"
    window: list[float] = []
    sent = [0]
    events = [0]
    late: list[float] = []
    up = [0]
    all_up = asyncio.Event()
    go = asyncio.Event()

    async def session(i: int) -> None:
        async with websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"},
                                      compression=None, max_size=16 * 2**20, open_timeout=120) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            up[0] += 1
            if up[0] == n:
                all_up.set()
            await go.wait()

            async def reader() -> None:
                async for message in ws:
                    json.loads(message)
                    if window and window[0] <= loop.time() < window[1]:
                        events[0] += 1

            task = asyncio.create_task(reader())
            start = window[0] - warmup + (i / n) * 0.02
            k = 0
            try:
                while True:
                    at = start + k * 0.02
                    delay = at - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                              "audio": chunks[k % len(chunks)]}))
                    if window[0] <= at < window[1]:
                        sent[0] += 1
                        late.append(loop.time() - at)
                    k += 1
            finally:
                task.cancel()

    tasks = [asyncio.create_task(session(i)) for i in range(n)]
    waiter = asyncio.create_task(all_up.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        for t in done:
            t.result()
    t0 = loop.time() + 0.05 + warmup
    window[:] = [t0, t0 + duration]
    go.set()
    await asyncio.sleep(t0 - loop.time())
    a = (loop.time(), C.proc_cpu(), sum(C.proc_cpu(p) for p in pids), received())
    await asyncio.sleep(window[1] - loop.time())
    b = (loop.time(), C.proc_cpu(), sum(C.proc_cpu(p) for p in pids), received())
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"window_s": b[0] - a[0], "client_cpu_s": b[1] - a[1], "server_cpu_s": b[2] - a[2],
            "appends": sent[0], "events": events[0], "handled": b[3] - a[3],
            "late_p99_ms": C.percentile([x * 1000 for x in late], 99)}


@contextmanager
def _server_from(root: Path | None, extra: Sequence[str]) -> Iterator[C.ServerProcess]:
    """``bench/_server.py`` of this tree, or of another checkout (``--compare``: its own code)."""
    if root is None:
        with C.server_process(extra) as server:
            yield server
        return
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen([sys.executable, str(root / "bench" / "_server.py"), *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(root),
                            env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 2:
            raise RuntimeError(f"bench server in {root} did not start (got {line!r})")
        yield C.ServerProcess(proc, line[0], line[1])
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _raw_client(url: str, key: str, n: int, warmup: float, duration: float,
                pids: list[int], received: Callable[[], int]) -> dict[str, Any]:
    """N sessions from one thread on plain non-blocking sockets: the handshake by hand, then
    pre-masked append frames written on schedule and whatever the server sends read and
    dropped (not parsed). Costs a few us a frame, so the server gets most of the CPU there is."""
    import select
    import socket
    import time

    from websockets.frames import Frame, Opcode

    host, port = url.split("//", 1)[1].rsplit(":", 1)
    chunks = C.pcm_chunks_b64()
    frames = [Frame(Opcode.TEXT, json.dumps({"type": "input_audio_buffer.append", "audio": c}).encode())
              .serialize(mask=True, extensions=[]) for c in chunks]
    request = (f"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               f"Authorization: Bearer {key}\r\n\r\n").encode()
    socks = []
    for _ in range(n):
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        got = b""
        while b"session.created" not in got:  # the 101 answer, then the first event
            got += sock.recv(65536)
        sock.setblocking(False)
        socks.append(sock)
    epoll = select.epoll()
    for sock in socks:
        epoll.register(sock.fileno(), select.EPOLLIN)
    got_bytes = 0

    def drain(timeout: float) -> None:
        nonlocal got_bytes
        for fd, _ in epoll.poll(timeout):
            try:
                got_bytes += len(os.read(fd, 1 << 20))
            except BlockingIOError:
                pass

    start = time.monotonic() + 0.05
    window = (start + warmup, start + warmup + duration)
    late: list[float] = []
    sent = 0
    a = b = None
    k = 0
    step = 0.02 / n
    while True:
        for i, sock in enumerate(socks):
            at = start + k * 0.02 + i * step
            if a is None and at >= window[0]:
                a = (time.monotonic(), C.proc_cpu(), sum(C.proc_cpu(p) for p in pids), received())
            if at >= window[1]:
                b = (time.monotonic(), C.proc_cpu(), sum(C.proc_cpu(p) for p in pids), received())
                break
            while (wait := at - time.monotonic()) > 0:
                drain(wait)
            try:
                sock.send(frames[k % len(frames)])  # ~1.3 KB: the socket buffer takes it whole
            except BlockingIOError:
                raise RuntimeError("the server stopped reading") from None
            if at >= window[0]:
                sent += 1
                late.append(time.monotonic() - at)
        if b is not None:
            break
        k += 1
    for sock in socks:
        sock.close()
    epoll.close()
    assert a is not None
    return {"window_s": b[0] - a[0], "client_cpu_s": b[1] - a[1], "server_cpu_s": b[2] - a[2],
            "appends": sent, "events": math.nan, "handled": b[3] - a[3],
            "late_p99_ms": C.percentile([x * 1000 for x in late], 99)}


def measure(n: int, args: argparse.Namespace, profile_dir: Path | None,
            root: Path | None = None) -> dict[str, Any]:
    import asyncio
    import threading

    extra = ["--engine", args.server_engine]
    if args.workers > 1:
        extra += ["--workers", str(args.workers)]
    with _server_from(root, extra) as server:
        pids = json.loads(server.command("pids")) if args.workers > 1 else [server.pid]
        spies: list[subprocess.Popen[bytes]] = []
        if profile_dir is not None:
            def later() -> None:  # record the middle of the window
                import time
                time.sleep(args.warmup + 2.0 + n * 0.01 + args.duration / 4)
                spies.append(_profile(pids[0], args.duration / 2, profile_dir / f"server-{n}.txt"))
            threading.Thread(target=later, daemon=True).start()
        def received() -> int:  # client events the server has handled (all its workers)
            return int(json.loads(server.command("stats"))["client_events_received"])

        if args.client == "raw":
            r = _raw_client(server.url, server.key, n, args.warmup, args.duration, pids, received)
        else:
            r = asyncio.run(_client(server.url, server.key, n, args.warmup, args.duration, pids,
                                    received))
        for spy in spies:
            spy.wait(timeout=60)
    wall = r["window_s"]
    res = {
        "sessions": n,
        "window_s": wall,
        "appends": r["appends"],
        "appends_per_session_s": r["appends"] / (n * wall),
        "server_cpu_s": r["server_cpu_s"],
        "server_cpu_pct": 100 * r["server_cpu_s"] / wall,
        "server_ms_per_session_s": 1e3 * r["server_cpu_s"] / (n * wall),
        # per append the server handled in the window: a server that falls behind handles fewer
        # than were sent (and reads several at once), so per append *sent* would flatter it
        "server_us_per_append": 1e6 * r["server_cpu_s"] / r["handled"] if r["handled"] else math.nan,
        "handled_per_sent": r["handled"] / r["appends"] if r["appends"] else math.nan,
        # what a session-second costs when every append is handled (50 a second)
        "server_ms_per_session_s_handled": 50e3 * r["server_cpu_s"] / r["handled"]
        if r["handled"] else math.nan,
        "client_ms_per_session_s": 1e3 * r["client_cpu_s"] / (n * wall),
        "client_cpu_pct": 100 * r["client_cpu_s"] / wall,
        "late_p99_ms": r["late_p99_ms"],
        "events_per_s": r["events"] / wall,
        "loadavg": C.loadavg()[0],
    }
    if profile_dir is not None and (profile_dir / f"server-{n}.txt").exists():
        (profile_dir / f"server-{n}-top.txt").write_text(own_time(profile_dir / f"server-{n}.txt"))
    return res


_KEYS = ("server_ms_per_session_s_handled", "server_us_per_append", "server_ms_per_session_s",
         "server_cpu_pct", "client_ms_per_session_s", "appends_per_session_s", "handled_per_sent")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", default="100,200,300")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--server-engine", choices=("lean", "hypercorn"), default="lean")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--client", choices=("websockets", "raw"), default="websockets",
                   help="websockets: asyncio + websockets sessions; raw: pre-masked frames from one "
                        "thread on plain sockets, server events read and dropped (cheapest)")
    p.add_argument("--compare", default=None, metavar="ROOT",
                   help="also measure the server of another checkout (e.g. /work/main), runs "
                        "interleaved with this tree's, and print the ratio")
    p.add_argument("--profile", default=None, metavar="DIR", help="py-spy the server into DIR")
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    if args.workers > 1:  # bench/_server.py runs one process: there is no serve --workers
        p.error("--workers: the embedded server runs one process (rtfleet serve has no --workers)")
    profile_dir = Path(args.profile) if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    trees: dict[str, Path | None] = {"this": None}
    if args.compare:
        trees = {"baseline": Path(args.compare).resolve(), "this": None}
    env = C.environment()
    print(f"server_cost: sizes {args.sessions}; {args.repeats} repeats; window {args.duration}s after "
          f"{args.warmup}s; server engine {args.server_engine}, {args.workers} worker(s)"
          f"{'; baseline ' + args.compare if args.compare else ''}; load {env['loadavg_start']}",
          flush=True)
    report: dict[str, Any] = {"benchmark": "server_cost", "env": env, "args": vars(args), "sizes": {}}
    for n in [int(s) for s in args.sessions.split(",")]:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for rep in range(args.repeats):
            order = list(trees) if rep % 2 == 0 else list(trees)[::-1]  # alternate against drift
            for name in order:
                prof = profile_dir / name if profile_dir is not None and rep == 0 else None
                if prof is not None:
                    prof.mkdir(exist_ok=True)
                r = measure(n, args, prof, trees[name])
                runs[name].append(r)
                if "error" in r:
                    print(f"  N={n} {name} rep {rep}: ERROR {r['error']}", flush=True)
                    continue
                print(f"  N={n} {name:<8} rep {rep}: server {r['server_ms_per_session_s']:.2f} ms "
                      f"CPU/session-s ({r['server_cpu_pct']:.0f}% of a core), "
                      f"{r['server_us_per_append']:.1f} us/append handled, {r['appends_per_session_s']:.1f} "
                      f"appends/session-s sent, {r['handled_per_sent']:.2f} handled/sent; client {r['client_ms_per_session_s']:.2f} ms/session-s "
                      f"({r['client_cpu_pct']:.0f}%), p99 {r['late_p99_ms']:.1f} ms, "
                      f"load {r['loadavg']:.2f}", flush=True)
        summary = {}
        for name, rs in runs.items():
            ok = [r for r in rs if "error" not in r]
            agg = summary[name] = {k: C.summary([r[k] for r in ok]) for k in _KEYS}
            print(f"N={n} {name}: server {C.fmt(agg['server_ms_per_session_s_handled'], digits=2)} ms "
                  f"CPU/session-s (per append handled x 50), {C.fmt(agg['server_us_per_append'])} "
                  f"us/append handled, {C.fmt(agg['server_cpu_pct'], digits=0)}% of a core, "
                  f"{C.fmt(agg['handled_per_sent'], digits=2)} handled/sent", flush=True)
        entry: dict[str, Any] = {"runs": runs, "summary": summary}
        if args.compare:
            entry["ratio"] = {k: C.ratio(summary["this"][k], summary["baseline"][k]) for k in _KEYS[:2]}
            print(f"N={n} this/baseline: CPU per append handled "
                  f"{entry['ratio']['server_us_per_append']:.2f}x", flush=True)
        report["sizes"][str(n)] = entry
    report["env"]["loadavg_end"] = C.loadavg()
    parts = []
    for n, entry in report["sizes"].items():
        this = entry["summary"]["this"]
        part = (f"N={n} {C.fmt(this['server_us_per_append'], digits=0)} us/append handled "
                f"({this['server_ms_per_session_s_handled']['median']:.2f} ms/session-s, "
                f"{this['handled_per_sent']['median']:.2f} handled/sent)")
        if "ratio" in entry:
            part += f" = {entry['ratio']['server_us_per_append']:.2f}x baseline"
        parts.append(part)
    line = (f"SUMMARY server_cost: {args.client} client, {args.workers} worker(s): " + "; ".join(parts)
            + f"; load {report['env']['loadavg_start'][0]:.2f}->{report['env']['loadavg_end'][0]:.2f}")
    report["summary_line"] = line
    C.write_json(args.json_out, report)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
