"""Interop with a real SIP peer: SIPp (Debian package ``sip-tester``) over loopback UDP.

The test drives the sans-I/O agent with a minimal blocking I/O loop (one socket, one
timer), the way an I/O shell does.  Skipped when ``sipp`` is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from actors.proto.rtp import RtpPacket, RtpPacketizer
from actors.proto.sip import (CallAnswered, CallConfirmed, CallEnded, IncomingCall, SipConfig,
                              SipUserAgent, audio_session, create_answer, create_offer)

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed")

LOOPBACK = "127.0.0.1"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def drive(ua: SipUserAgent, sock: socket.socket, on_event: Callable[[object, float], bool],
          timeout: float = 15.0) -> None:
    """Run the agent until ``on_event`` returns True (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        for data, address in ua.datagrams_to_send():
            sock.sendto(data, address)
        while (event := ua.next_event()) is not None:
            if on_event(event, time.monotonic()):
                for data, address in ua.datagrams_to_send():
                    sock.sendto(data, address)
                return
        now = time.monotonic()
        assert now < deadline, "timed out waiting for the peer"
        timer = ua.get_timer()
        wait = min(deadline - now, 0.2 if timer is None else max(timer - now, 0.0))
        sock.settimeout(max(wait, 0.001))
        try:
            data, address = sock.recvfrom(65535)
        except socket.timeout:
            ua.handle_timer(time.monotonic())
        else:
            ua.receive_datagram(data, address, time.monotonic())


def start_sipp(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    """Run one SIPp call in ``cwd``; its error output goes to ``cwd/sipp.err``."""
    with open(cwd / "sipp.err", "wb") as err:
        return subprocess.Popen(["sipp", *args, "-i", LOOPBACK, "-m", "1", "-nostdin", "-timeout",
                                 "20s", "-timeout_error"], cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=err)


def finished_ok(peer: subprocess.Popen[bytes], cwd: Path) -> None:
    code = peer.wait(timeout=15)
    assert code == 0, (cwd / "sipp.err").read_text(errors="replace")


def test_call_sipp_uas_with_rtp_echo(tmp_path: Path) -> None:
    sipp_port, media_port = free_udp_port(), free_udp_port()
    peer = start_sipp(["-sn", "uas", "-p", str(sipp_port), "-mp", str(media_port), "-rtp_echo"], tmp_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((LOOPBACK, 0))
        rtp.bind((LOOPBACK, 0))
        ua = SipUserAgent(SipConfig(host=LOOPBACK, port=sock.getsockname()[1]))
        offer = create_offer(LOOPBACK, rtp.getsockname()[1])
        # no sleep for sipp to bind: if it is late, INVITE retransmission (Timer A) covers it
        call_id = ua.place_call(f"sip:service@{LOOPBACK}:{sipp_port}", offer.to_bytes(), time.monotonic())
        answered: list[CallAnswered] = []
        drive(ua, sock, lambda e, now: isinstance(e, CallAnswered) and not answered.append(e))
        assert answered[0].remote_sdp is not None
        session = audio_session(offer, answered[0].remote_sdp)
        assert session.codec.name == "PCMU" and session.remote_address == (LOOPBACK, media_port)

        packetizer = RtpPacketizer.create(session.codec.payload_type, ssrc=1234, sequence=100, timestamp=0)
        sent = [packetizer.packetize(bytes([i]) * 160) for i in range(5)]
        for packet in sent:
            rtp.sendto(packet, session.remote_address)
        rtp.settimeout(2.0)
        echoed = [RtpPacket.decode(rtp.recvfrom(2048)[0]) for _ in sent]
        assert [p.payload for p in echoed] == [RtpPacket.decode(p).payload for p in sent]
        assert [p.sequence for p in echoed] == [100, 101, 102, 103, 104] and echoed[0].marker

        ua.hangup(call_id, time.monotonic())
        drive(ua, sock, lambda e, now: isinstance(e, CallEnded))
        finished_ok(peer, tmp_path)
    finally:
        sock.close()
        rtp.close()
        if peer.poll() is None:
            peer.kill()
            peer.wait()


def test_answer_call_from_sipp_uac(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
        ua = SipUserAgent(SipConfig(host=LOOPBACK, port=port))
        peer = start_sipp(["-sn", "uac", f"{LOOPBACK}:{port}", "-p", str(free_udp_port()), "-d", "300"],
                          tmp_path)
        seen: list[object] = []

        def on_event(event: object, now: float) -> bool:
            seen.append(event)
            if isinstance(event, IncomingCall):
                assert event.remote_sdp is not None
                ua.ring(event.call_id, now)
                answer = create_answer(event.remote_sdp, LOOPBACK, 49170)
                ua.answer(event.call_id, answer.to_bytes(), now)
            return isinstance(event, CallEnded)

        drive(ua, sock, on_event)
        assert [type(e) for e in seen] == [IncomingCall, CallConfirmed, CallEnded]
        assert isinstance(seen[-1], CallEnded) and seen[-1].by == "remote"
        finished_ok(peer, tmp_path)
    finally:
        sock.close()
        if "peer" in locals() and peer.poll() is None:
            peer.kill()
            peer.wait()
