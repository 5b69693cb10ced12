"""RTP packet encode/decode (RFC 3550 5.1), including fuzzing: only RtpDecodeError escapes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.proto.rtp import RtpDecodeError, RtpError, RtpPacket, is_rtcp


def test_minimal_pcmu_packet_layout() -> None:
    packet = RtpPacket(payload_type=0, sequence=0x1234, timestamp=0xDEADBEEF, ssrc=0x01020304,
                       payload=b"\xff" * 160, marker=True)
    data = packet.encode()
    assert len(data) == 172
    assert data[:12] == bytes([0x80, 0x80, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4])
    assert RtpPacket.decode(data) == packet


def test_csrc_extension_and_padding() -> None:
    packet = RtpPacket(8, 65535, 2**32 - 1, 7, b"abc", False, (1, 2, 3), (0xBEDE, b"\x10\x01\x00\x00"), 5)
    data = packet.encode()
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert data[-5:] == b"\x00\x00\x00\x00\x05"
    decoded = RtpPacket.decode(data)
    assert decoded == packet and decoded.payload == b"abc"


def test_decode_skips_foreign_extension() -> None:
    header = struct.pack("!BBHII", 0x90, 0x00, 1, 160, 99)
    extension = struct.pack("!HH", 0x1000, 2) + b"12345678"
    decoded = RtpPacket.decode(header + extension + b"payload")
    assert decoded.payload == b"payload" and decoded.extension == (0x1000, b"12345678")


@pytest.mark.parametrize("data", [
    b"", b"\x80" * 11,
    bytes([0x40]) + bytes(11),  # version 1
    bytes([0x83]) + bytes(11) + bytes(8),  # 3 CSRC announced, 2 present
    bytes([0x90]) + bytes(11) + b"\x00\x00",  # truncated extension header
    bytes([0x90]) + bytes(11) + b"\x00\x00\x00\x05" + bytes(8),  # extension longer than packet
    bytes([0xA0]) + bytes(11) + b"ab\x00",  # padding count 0
    bytes([0xA0]) + bytes(11) + b"ab\x09",  # padding longer than payload
])
def test_malformed(data: bytes) -> None:
    with pytest.raises(RtpDecodeError):
        RtpPacket.decode(data)


@pytest.mark.parametrize("packet", [
    RtpPacket(128, 0, 0, 0), RtpPacket(0, 65536, 0, 0), RtpPacket(0, 0, 2**32, 0),
    RtpPacket(0, 0, 0, -1), RtpPacket(0, 0, 0, 0, csrc=tuple(range(16))),
    RtpPacket(0, 0, 0, 0, extension=(0, b"abc")), RtpPacket(0, 0, 0, 0, padding=256),
])
def test_encode_rejects_out_of_range(packet: RtpPacket) -> None:
    with pytest.raises(RtpError):
        packet.encode()


def test_rtcp_detection() -> None:
    assert is_rtcp(bytes([0x80, 200]) + bytes(6))  # sender report
    assert not is_rtcp(RtpPacket(0, 1, 2, 3).encode())
    assert not is_rtcp(b"\x80")


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_decode_random_bytes(data: bytes) -> None:
    try:
        packet = RtpPacket.decode(data)
    except RtpDecodeError:
        return
    assert RtpPacket.decode(packet.encode()) == packet


@settings(max_examples=1000, deadline=None, database=None)
@given(st.builds(RtpPacket, payload_type=st.integers(0, 127), sequence=st.integers(0, 65535),
                 timestamp=st.integers(0, 2**32 - 1), ssrc=st.integers(0, 2**32 - 1),
                 payload=st.binary(max_size=200), marker=st.booleans(),
                 csrc=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
                 extension=st.none() | st.tuples(st.integers(0, 65535),
                                                 st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4])),
                 padding=st.integers(0, 255)))
def test_round_trip(packet: RtpPacket) -> None:
    assert RtpPacket.decode(packet.encode()) == packet
