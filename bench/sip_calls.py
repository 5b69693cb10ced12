"""How many concurrent SIP calls the embedded server holds with real-time RTP pacing.

SIPp (Debian ``sip-tester``) places ``--calls`` calls at ``--rate`` calls/s into the embedded
server (auto-accept, no webhook); every call plays a G.711 caller turn (pcap made here), holds
``--hold-ms``, then hangs up. The server answers each with the deterministic model over RTP and
a 20 ms pacer per call; the figure is the pacer's lateness (send time minus due time) over all
frames of all calls, plus whether every call completed (SIPp exit 0) and its RTP counts.
Real time is held when no pacer gave frames up (``frames_skipped`` 0: never 100 ms behind) and
every call sent the frames its duration called for (``min_sent_over_due`` near 1).

    python bench/sip_calls.py --calls 100 --rate 50 --hold-ms 10000

Loopback only. Not a test: it prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from standin import EmbeddedServer  # noqa: E402
from standin.sessions.sip_testing import (caller_audio_packets, sipp_command,  # noqa: E402
                                             uac_scenario, write_pcap)


async def _count_live(server: EmbeddedServer, peak: list[int]) -> None:
    """Samples how many calls are up (every 100 ms; only for the report's peak)."""
    while True:
        peak[0] = max(peak[0], len(server.calls))
        await trio.sleep(0.1)


async def main(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_pcap(directory / "caller.pcap", caller_audio_packets())
        scenario = directory / "caller.xml"
        scenario.write_text(uac_scenario("caller.pcap", hold_ms=args.hold_ms))
        server = EmbeddedServer.with_generated_key(sip_port=0)
        started = time.monotonic()
        max_live = [0]
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            nursery.start_soon(_count_live, server, max_live)
            command = sipp_command(server.sip.port, scenario, calls=args.calls, rate=args.rate,
                                   limit=args.calls, timeout_s=int(args.hold_ms / 1000) + 120)
            result = await trio.run_process(command, cwd=directory, check=False,
                                            capture_stdout=True, capture_stderr=True)
            nursery.cancel_scope.cancel()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    calls = list(server.sip.finished)
    late = np.array([x for call in calls for x in call.lateness.samples]) * 1000
    wall = time.monotonic() - started
    return {
        "calls": args.calls, "rate": args.rate, "hold_ms": args.hold_ms,
        "sipp_exit": result.returncode, "accepted": server.sip.stats.accepted,
        "completed": sum(1 for c in calls if c.end_reason == "bye (remote)"),
        "answered_with_audio": sum(1 for c in calls if c.audio_frames_sent > 0),
        "rtp_sent": server.sip.stats.rtp_sent, "rtp_received": server.sip.stats.rtp_received,
        # real time held: no pacer gave frames up (100 ms behind), and the worst call's frames
        # sent over the frames its duration called for
        "frames_skipped": sum(c.stream.pacer.skipped for c in calls if c.stream.pacer),
        "min_sent_over_due": round(min((c.rtp_sent * 0.020 / (c.ended_at - c.accepted_at)
                                        for c in calls if c.ended_at), default=0.0), 4),
        "max_concurrent": max_live[0],
        "lateness_ms": {q: round(float(np.percentile(late, int(q[1:]))), 2) if late.size else None
                        for q in ("p50", "p90", "p99")} | {"max": round(float(late.max()), 2) if late.size else None},
        "server_cpu_s": round((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime), 2),
        "wall_s": round(wall, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--hold-ms", type=int, default=10_000)
    print(json.dumps(trio.run(main, parser.parse_args())))
