"""The SIP actor answering a real caller (SIPp, Debian ``sip-tester``), end to end over loopback:

* RFC 4733 telephone-event RTP from the caller becomes a ``ConnectionEvent`` the fleet's user
  sees (``info`` ``{"event": "sip.dtmf", "digit": "5"}`` on a subscription);
* with the session's input format ``audio/pcmu`` the caller's µ-law goes to
  ``input_audio_buffer.append`` as it is (no transcoding): the bytes the embedded server decodes
  from the appends are SIPp's RTP payloads, frame for frame, in order.

The caller's audio is a pcap SIPp plays (``sip_testing.caller_audio_packets``): one second of
silence (the realtime session connects meanwhile), 600 ms of a 440 Hz tone, silence, digit 5.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.events import EventKind
from actors.proto.rtp import PCMU_SILENCE, RtpPacket
from actors.sip import SipOptions, plan_call
from actors.sip_phone import SipPhone
from orchestrator.fleet import open_fleet
from standin.model import realtime as server_model
from standin.sessions.sip_testing import caller_audio_packets, sipp_command, uac_scenario, write_pcap

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed")


def _is_subsequence(needles: list[bytes], haystack: list[bytes]) -> bool:
    it = iter(haystack)
    return all(any(frame == needle for frame in it) for needle in needles)


async def test_caller_dtmf_is_an_event_and_pcmu_passes_through(tmp_path: Path, monkeypatch: Any) -> None:
    packets = caller_audio_packets(lead_ms=1000, tone_ms=600, tail_ms=400, digit="5")
    tone = [p.payload for p in (RtpPacket.decode(raw) for _, raw in packets)
            if p.payload_type == 0 and p.payload != PCMU_SILENCE]
    assert len(tone) == 30  # 600 ms of tone, 20 ms frames
    write_pcap(tmp_path / "caller.pcap", packets)
    scenario = tmp_path / "caller.xml"
    scenario.write_text(uac_scenario("caller.pcap", hold_ms=3000))

    # spies on the embedded model's two ways in for an append (the real code still runs): the
    # bare-append scan, which the rtfleet client's appends take, and the event handler
    appended: list[tuple[str, bytes]] = []
    original = server_model._HANDLERS["input_audio_buffer.append"]
    original_bare = server_model.RealtimeSession._receive_append

    def spy(session: Any, obj: dict[str, Any], now: float, out: list[Any]) -> None:
        appended.append((server_model.cfg.input_format(session.session).type,
                         base64.b64decode(obj["audio"])))
        original(session, obj, now, out)

    def spy_bare(session: Any, audio: str, data: bytes, event_id: str | None, now: float) -> Any:
        appended.append((server_model.cfg.input_format(session.session).type, data))
        return original_bare(session, audio, data, event_id, now)

    monkeypatch.setitem(server_model._HANDLERS, "input_audio_buffer.append", spy)
    monkeypatch.setattr(server_model.RealtimeSession, "_receive_append", spy_bare)
    config = {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"},
                                                      "turn_detection": None}}}
    with trio.fail_after(40):
        async with open_fleet(policy="transient") as fleet:
            phone = SipPhone()
            port = await fleet.nursery.start(phone.run)
            async with fleet.subscribe(kinds=["info"]) as infos:
                sipp = await trio.lowlevel.open_process(
                    sipp_command(port, scenario, calls=1, rate=1), cwd=tmp_path,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    incoming = await phone.next_incoming()
                    plan_call("callee", SipOptions(phone, incoming=incoming))
                    sid = await fleet.add_session("callee", transport="sip", policy="transient",
                                                  config=config)
                    await fleet.wait_connected(sid)
                    async for event in infos:
                        if event.payload.get("event") == "sip.dtmf":
                            assert event.session_id == sid and event.kind is EventKind.INFO
                            assert event.payload["digit"] == "5"
                            break
                    # SIPp hangs up after its hold: the call, then the actor, end normally
                    await fleet.wait_state(sid, "closed", "error")
                    assert fleet.status(sid).last_exit.reason.value == "normal"
                    assert await sipp.wait() == 0
                finally:
                    if sipp.returncode is None:
                        sipp.kill()
                        await sipp.wait()
            (record,) = [r for r in fleet.server.connections if r.transport == "websocket"
                         and r.auth_kind == "client_secret"]
            await record.closed.wait()  # every append sent has been handled by the model
    assert appended, "no input_audio_buffer.append reached the server"
    # pass-through: 2 frames of 8 kHz µ-law per append (PCM16 24 kHz would be 1920 bytes)
    assert {fmt for fmt, _ in appended} == {"audio/pcmu"}
    assert {len(audio) for _, audio in appended} == {320}
    frames = [audio[i:i + 160] for _, audio in appended for i in (0, 160)]
    # every tone frame SIPp sent reached the server byte for byte, in order (the jitter buffer
    # may put concealment silence between frames, never change one)
    assert _is_subsequence(tone, frames), "the caller's µ-law was not passed through unchanged"
    assert set(frames) <= set(tone) | {PCMU_SILENCE}
