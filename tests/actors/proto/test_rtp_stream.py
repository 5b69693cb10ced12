"""Packetizer, depacketizer, pacing arithmetic and the jitter buffer."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.proto.rtp import (PCMA_SILENCE, JitterBuffer, Pacer, RtpDepacketizer, RtpPacket,
                              RtpPacketizer, frames_due, send_time, seq_delta)
from actors.proto.rtp.packet import RtpError


def test_packetizer_progression_and_marker() -> None:
    p = RtpPacketizer.create(0, ssrc=5, sequence=65534, timestamp=2**32 - 160)
    packets = [RtpPacket.decode(p.packetize(b"\xff" * 160)) for _ in range(3)]
    assert [x.sequence for x in packets] == [65534, 65535, 0]
    assert [x.timestamp for x in packets] == [2**32 - 160, 0, 160]
    assert [x.marker for x in packets] == [True, False, False]
    p.skip(800)  # 100 ms of silence not sent: new talkspurt
    after = RtpPacket.decode(p.packetize(b"\xff" * 160))
    assert after.marker and after.timestamp == 320 + 800 and after.sequence == 1
    event = RtpPacket.decode(p.packetize_event(b"\x01\x0a\x00\xa0", payload_type=101, timestamp=1280, marker=True))
    assert (event.payload_type, event.timestamp, event.sequence, event.marker) == (101, 1280, 2, True)
    assert p.timestamp == 1280  # events do not advance the media clock


@settings(max_examples=200, deadline=None)
@given(pt=st.integers(0, 127), ssrc=st.integers(0, 2**32 - 1), seq=st.integers(0, 65535),
       ts=st.integers(0, 2**32 - 1), payload=st.binary(max_size=320), marker=st.booleans())
def test_packetize_gives_the_bytes_of_rtp_packet_encode(pt, ssrc, seq, ts, payload, marker) -> None:
    # the packetizer packs the header itself (the audio clock's per-frame path)
    p = RtpPacketizer(pt, ssrc, seq, ts, talkspurt=marker)
    assert p.packetize(payload) == RtpPacket(pt, seq, ts, ssrc, payload, marker).encode()


def test_packetize_refuses_a_payload_type_or_ssrc_out_of_range() -> None:
    with pytest.raises(RtpError, match="payload type 128"):
        RtpPacketizer(128, 1, 0, 0).packetize(b"")
    with pytest.raises(RtpError, match="SSRC"):
        RtpPacketizer(0, 2**32, 0, 0).packetize(b"")


def test_packetizer_random_initial_values_are_injectable() -> None:
    a = RtpPacketizer.create(8, rng=random.Random(7))
    b = RtpPacketizer.create(8, rng=random.Random(7))
    c = RtpPacketizer.create(8, rng=random.Random(8))
    assert (a.ssrc, a.sequence, a.timestamp) == (b.ssrc, b.sequence, b.timestamp)
    assert (a.ssrc, a.sequence, a.timestamp) != (c.ssrc, c.sequence, c.timestamp)


def test_depacketizer_filters_and_follows_ssrc_change() -> None:
    d = RtpDepacketizer(payload_types=frozenset({0, 101}), switch_after=3)
    assert d.receive(RtpPacket(0, 1, 0, 11, b"a").encode()) is not None
    assert d.receive(RtpPacket(96, 2, 0, 11, b"a").encode()) is None
    assert d.receive(b"junk") is None
    assert d.receive(bytes([0x80, 200]) + bytes(26)) is None
    assert d.receive(RtpPacket(0, 9, 0, 22, b"b").encode()) is None
    assert d.receive(RtpPacket(0, 10, 0, 22, b"b").encode()) is None
    assert d.receive(RtpPacket(0, 11, 0, 22, b"b").encode()) is not None  # third in a row: switch
    assert d.ssrc == 22
    s = d.stats
    assert (s.received, s.unexpected_payload_type, s.malformed, s.rtcp, s.foreign_ssrc, s.ssrc_changes) == (
        2, 1, 1, 1, 2, 1)


def test_pacing_is_pure_arithmetic() -> None:
    assert [send_time(100.0, i) for i in range(4)] == pytest.approx([100.0, 100.02, 100.04, 100.06])
    assert frames_due(100.0, 99.0, 0) == 0
    assert frames_due(100.0, 100.0, 0) == 1
    assert frames_due(100.0, 100.06, 1) == 3  # frames 1, 2, 3 are due
    assert frames_due(100.0, 100.019, 1) == 0
    pacer = Pacer(start=10.0)
    assert pacer.due(10.0) == 1
    pacer.mark_sent()
    assert pacer.next_deadline() == pytest.approx(10.02)
    assert pacer.due(10.03) == 1
    pacer.mark_sent()
    assert pacer.due(11.0) == 1 and pacer.skipped == 48  # stalled 1 s: frame 50 only, no burst
    pacer.mark_sent()
    assert pacer.next_deadline() == pytest.approx(11.02)


def test_seq_delta_wraps() -> None:
    assert seq_delta(0, 65535) == 1 and seq_delta(65535, 0) == -1 and seq_delta(5, 5) == 0
    assert seq_delta(32767, 0) == 32767 and seq_delta(32768, 0) == -32768


def pkt(seq: int, payload: bytes | None = None, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(8, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, ssrc, payload or bytes([seq & 0xFF]) * 160)


def test_jitter_buffer_prefill_reorder_and_wrap() -> None:
    jb = JitterBuffer(depth=3, silence=PCMA_SILENCE)
    for seq in (65534, 0, 65535):  # out of order across the wrap, all in one period
        jb.push(pkt(seq))
    assert [jb.pop() for _ in range(3)] == [pkt(65534).payload, pkt(65535).payload, pkt(0).payload]
    assert jb.pop() == PCMA_SILENCE and jb.stats.underruns == 1  # empty: conceal, do not advance
    jb.push(pkt(1))
    assert jb.pop() == pkt(1).payload
    assert jb.stats.played == 4 and jb.stats.lost == 0


def test_jitter_buffer_prefill_ends_after_depth_periods() -> None:
    jb = JitterBuffer(depth=3)
    assert jb.pop() is None  # nothing received yet: no clock is running
    jb.push(pkt(7))
    assert [jb.pop() for _ in range(3)] == [None, None, None]  # 3 periods of delay
    assert jb.pop() == pkt(7).payload  # a short stream still plays


def test_jitter_buffer_loss_late_and_duplicates() -> None:
    jb = JitterBuffer(depth=2, silence=b"S")
    jb.push(pkt(10))
    jb.push(pkt(12))  # 11 lost
    jb.push(pkt(12))
    assert jb.stats.duplicates == 1
    assert jb.pop() == pkt(10).payload
    assert jb.pop() == b"S" and jb.stats.lost == 1
    jb.push(pkt(11))  # arrives too late
    assert jb.stats.late == 1
    assert jb.pop() == pkt(12).payload


def test_jitter_buffer_bounded_and_resync() -> None:
    jb = JitterBuffer(depth=2, capacity=4)
    for seq in range(100, 110):
        jb.push(pkt(seq))
    assert len(jb) == 4 and jb.stats.overflow == 6
    assert jb.pop() == pkt(106).payload  # the oldest were dropped: latency stays bounded
    jb.push(pkt(5000))  # a jump far beyond the window: the sender restarted
    assert jb.stats.resyncs == 1 and len(jb) == 1
    jb.push(pkt(5001))
    assert jb.pop() == pkt(5000).payload
    jb.push(pkt(5002, ssrc=2))  # a new source also restarts
    assert jb.stats.resyncs == 2
    with pytest.raises(ValueError):
        JitterBuffer(depth=5, capacity=4)


@settings(max_examples=300, deadline=None, database=None)
@given(start=st.integers(0, 65535), count=st.integers(1, 120), seed=st.integers(0, 2**16),
       loss=st.floats(0, 0.5), spread=st.integers(0, 4))
def test_jitter_buffer_property(start: int, count: int, seed: int, loss: float, spread: int) -> None:
    """With reordering inside the buffer depth, every delivered frame plays once, in order,
    and every frame is either played or counted (lost, late, overflow)."""
    rng = random.Random(seed)
    sent = [(start + i) & 0xFFFF for i in range(count)]
    arrivals = sorted((i + rng.uniform(0, spread), seq) for i, seq in enumerate(sent) if rng.random() >= loss)
    jb = JitterBuffer(depth=spread + 1, capacity=spread + 10, silence=b"")
    played: list[bytes] = []
    tick = 0
    for when, seq in arrivals:
        while tick + 1 <= when:
            frame = jb.pop()
            if frame:
                played.append(frame)
            tick += 1
        jb.push(pkt(seq))
    for _ in range(count + 20):
        frame = jb.pop()
        if frame:
            played.append(frame)
    order = [p[0] for p in played]
    expected = [seq & 0xFF for seq in sent]
    it = iter(expected)
    assert all(any(x == y for y in it) for x in order)  # a subsequence: in order, no repeats
    s = jb.stats
    assert s.played == len(played)
    assert s.played + s.late + s.duplicates + s.overflow == s.pushed
