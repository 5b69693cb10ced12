"""The embedded server's SIP side with SIPp (Debian ``sip-tester``) as the caller, over loopback.

No webhook URL is configured, so every INVITE is accepted at once with the default session; each
caller plays a G.711 pcap made here (a spoken turn for the server VAD, then DTMF "5") while the
server runs the deterministic model over RTP and answers with paced G.711 audio.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trio

from standin import EmbeddedServer
from standin.sessions.sip_testing import caller_audio_packets, sipp_command, uac_scenario, write_pcap

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed")


def _caller_files(directory: Path, hold_ms: int = 3000) -> Path:
    write_pcap(directory / "caller.pcap", caller_audio_packets())
    scenario = directory / "caller.xml"
    scenario.write_text(uac_scenario("caller.pcap", hold_ms=hold_ms))
    return scenario


async def _run_sipp(command: list[str], cwd: Path) -> None:
    result = await trio.run_process(command, cwd=cwd, check=False, capture_stdout=True, capture_stderr=True)
    errors = cwd / "sipp_errors.log"
    detail = result.stderr.decode(errors="replace")[-2000:]
    if errors.exists():
        detail += errors.read_text(errors="replace")[-2000:]
    assert result.returncode == 0, detail


async def test_sipp_50_calls_at_10_per_second_with_rtp_both_ways(tmp_path: Path) -> None:
    scenario = _caller_files(tmp_path)
    server = EmbeddedServer.with_generated_key(sip_port=0)
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            await _run_sipp(sipp_command(server.sip.port, scenario, calls=50, rate=10), tmp_path)
            nursery.cancel_scope.cancel()
    sip = server.sip
    assert sip.stats.invites == 50 and sip.stats.accepted == 50 and sip.stats.calls_ended == 50
    calls = list(sip.finished)
    assert len(calls) == 50 and not server.calls
    expected = len(caller_audio_packets())
    for call in calls:
        assert call.end_reason == "bye (remote)"
        assert call.rtp_received == expected  # loopback: every caller packet arrived
        # continuous 20 ms RTP for the ~3 s call (the exact count for each call's own duration is
        # checked below; this only says the call ran about as long as planned)
        assert call.rtp_sent >= 90
        assert call.audio_frames_sent >= 20  # the model's spoken answer went out as RTP
        assert call.dtmf_digits == ["5"]
        roles = [item["role"] for item in call.session.items]
        assert roles == ["user", "assistant"], roles
    # Real-time pacing, judged as the caller's side would hear it (figures measured on this
    # 2-core machine with other test suites running, load average 4-5: p99 lateness 6-25 ms,
    # max <= 46 ms, no frame skipped, every call >= 98.7% of its frames; bench/sip_calls.py has
    # the figure without pytest):
    late = sorted(x for call in calls for x in call.lateness.samples)
    p99 = late[int(0.99 * (len(late) - 1))]
    print("lateness ms p50 p90 p99 max", [round(late[int(q * (len(late) - 1))] * 1000, 2) for q in (0.5, 0.9, 0.99, 1)])
    # no pacer fell 100 ms behind (it then gives frames up rather than send a burst)
    assert sum(call.stream.pacer.skipped for call in calls) == 0
    # each call sent the frames its duration calls for (20 ms each; the slack is the time
    # between the accept and the first tick, and the last partial period)
    for call in calls:
        assert call.rtp_sent * 0.020 >= 0.97 * (call.ended_at - call.accepted_at), call.rtp_sent
    # 99% of frames within a 60 ms jitter buffer (JitterBuffer's default depth: 3 frames), so a
    # receiver hears no gap
    assert p99 < 0.060, p99


async def test_sipp_call_in_without_audio_is_answered_and_hung_up(tmp_path: Path) -> None:
    scenario = tmp_path / "bare.xml"
    scenario.write_text(uac_scenario(None, hold_ms=200))
    server = EmbeddedServer.with_generated_key(sip_port=0)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            await _run_sipp(sipp_command(server.sip.port, scenario, calls=2, rate=10), tmp_path)
            nursery.cancel_scope.cancel()
    assert server.sip.stats.accepted == 2
    assert all(call.rtp_received == 0 and call.rtp_sent > 0 for call in server.sip.finished)
