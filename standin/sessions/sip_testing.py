"""Helpers for SIP tests and benchmarks with SIPp (Debian ``sip-tester``) as the peer.

* :func:`write_pcap` writes RTP packets as a classic libpcap file (Ethernet/IPv4/UDP), the
  input of SIPp's ``play_pcap_audio``; :func:`caller_audio_packets` makes a G.711 caller turn
  (silence, a tone the server VAD hears as speech, silence) and optionally an RFC 4733 digit.
* :func:`uac_scenario` is a SIPp caller scenario: INVITE with a PCMU + telephone-event offer,
  ACK, play the pcap, hold, BYE.
* :func:`sipp_command` builds the command line (loopback only, bounded by ``-timeout``).

Only the standard library, numpy and our own codecs: no external files.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np

from actors.proto.audio import g711_encode
from actors.proto.rtp import RtpPacketizer, dtmf_events

__all__ = ["caller_audio_packets", "sipp_command", "uac_scenario", "write_pcap"]

LOOPBACK = "127.0.0.1"


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_pcap(path: Path, packets: list[tuple[float, bytes]], *, src: tuple[str, int] = (LOOPBACK, 6000),
               dst: tuple[str, int] = (LOOPBACK, 7000)) -> None:
    """``packets`` = ``(seconds from start, RTP bytes)``; SIPp rewrites addresses and ports."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # linktype 1: Ethernet
    src_ip, dst_ip = (bytes(map(int, a.split("."))) for a in (src[0], dst[0]))
    for index, (at, rtp) in enumerate(packets):
        udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(rtp), 0) + rtp
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), index & 0xFFFF, 0, 64, 17, 0,
                             src_ip, dst_ip)
        ip = header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + udp
        frame = b"\0\0\0\0\0\1" + b"\0\0\0\0\0\2" + b"\x08\x00" + ip
        seconds = int(at)
        out.append(struct.pack("<IIII", seconds, int(round((at - seconds) * 1e6)), len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))


def caller_audio_packets(*, lead_ms: int = 200, tone_ms: int = 600, tail_ms: int = 800,
                         digit: str | None = "5", payload_type: int = 0, dtmf_type: int = 101,
                         amplitude: float = 0.3, seed: int = 1) -> list[tuple[float, bytes]]:
    """One caller turn as timed RTP packets (20 ms apart), then an optional DTMF digit."""
    rate = 8000
    pcm = np.zeros(rate * (lead_ms + tone_ms + tail_ms) // 1000)
    start, count = rate * lead_ms // 1000, rate * tone_ms // 1000
    pcm[start:start + count] = amplitude * 32767 * np.sin(2 * np.pi * 440 * np.arange(count) / rate)
    payload = g711_encode(payload_type, np.round(pcm).astype("<i2"))
    packetizer = RtpPacketizer.create(payload_type, rng=random.Random(seed))
    packets = [(i * 0.020, packetizer.packetize(payload[i * 160:(i + 1) * 160]))
               for i in range(len(payload) // 160)]
    if digit is not None:
        at = len(packets) * 0.020
        stamp = packetizer.timestamp
        for k, event in enumerate(dtmf_events(digit)):
            packets.append((at + k * 0.020, packetizer.packetize_event(
                event.encode(), payload_type=dtmf_type, timestamp=stamp, marker=k == 0)))
        packetizer.skip(160 * len(dtmf_events(digit)))
    return packets


def uac_scenario(pcap: str | None, *, hold_ms: int = 3000) -> str:
    """A SIPp caller: INVITE (PCMU + telephone-event), ACK, play ``pcap``, hold, BYE."""
    play = (f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>' if pcap else "")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="rtfleet caller with G.711 audio">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  {play}
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def sipp_command(target_port: int, scenario: Path, *, calls: int, rate: float, local_port: int = 0,
                 media_port: int = 0, timeout_s: int = 60, limit: int | None = None,
                 extra: tuple[str, ...] = ()) -> list[str]:
    """``sipp`` calling 127.0.0.1:``target_port`` with ``scenario`` (exit 0 = every call OK)."""
    command = ["sipp", f"{LOOPBACK}:{target_port}", "-sf", str(scenario), "-i", LOOPBACK,
               "-m", str(calls), "-r", str(rate), "-nostdin", "-timeout", f"{timeout_s}s",
               "-timeout_error", "-trace_err", "-error_file", str(scenario.parent / "sipp_errors.log")]
    if local_port:
        command += ["-p", str(local_port)]
    if media_port:
        command += ["-mp", str(media_port)]
    if limit is not None:
        command += ["-l", str(limit)]
    return command + list(extra)
