"""Fuzz harness: RTP datagrams, telephone-event payloads, the jitter buffer and DTMF detector.

Input: either one datagram (decoded whole), and also a stream of datagrams, each prefixed
with its one-byte length.  ``RtpPacket.decode`` and ``DtmfEvent.decode`` may raise only
:class:`RtpDecodeError`; a decoded packet re-encodes and decodes back equal; the stream's
packets go through a :class:`JitterBuffer` (one ``pop`` per packet, as the player calls it)
and a :class:`DtmfDetector`, which must never raise and stay within their bounds.
"""

from __future__ import annotations

from actors.proto.rtp.dtmf import DtmfDetector, DtmfEvent
from actors.proto.rtp.jitter import JitterBuffer
from actors.proto.rtp.packet import RtpDecodeError, RtpPacket, is_rtcp


def _decode(datagram: bytes) -> RtpPacket | None:
    is_rtcp(datagram)
    try:
        packet = RtpPacket.decode(datagram)
    except RtpDecodeError:
        return None
    assert RtpPacket.decode(packet.encode()) == packet
    try:
        event = DtmfEvent.decode(packet.payload)
    except RtpDecodeError:
        pass
    else:
        event.digit
    return packet


def check(data: bytes) -> None:
    _decode(data)
    jitter = JitterBuffer(depth=3, capacity=8, resync_gap=100)
    detector = DtmfDetector(payload_type=data[0] & 0x7F if data else 101)
    pos = 0
    while pos < len(data):
        size = data[pos]
        packet = _decode(data[pos + 1 : pos + 1 + size])
        pos += 1 + size
        if packet is None:
            continue
        jitter.push(packet)
        assert len(jitter) <= jitter.capacity
        jitter.pop()
        detector.push(packet)
    detector.flush()


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
