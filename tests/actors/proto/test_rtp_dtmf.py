"""RFC 4733 telephone events: payload format, sending sequence, once-per-key detection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.proto.rtp import (DtmfDetector, DtmfDigit, DtmfEvent, RtpDecodeError, RtpPacket,
                              dtmf_events, event_for_digit)


def test_payload_layout() -> None:
    event = DtmfEvent(event=11, end=True, volume=10, duration=800)
    assert event.encode() == bytes([11, 0x8A, 0x03, 0x20])
    assert DtmfEvent.decode(event.encode() + b"extra") == event and event.digit == "#"
    assert DtmfEvent.decode(bytes([16, 0x3F, 0, 0])).digit == "flash"
    with pytest.raises(RtpDecodeError):
        DtmfEvent.decode(b"\x01\x02")
    with pytest.raises(ValueError):
        DtmfEvent(1, volume=64).encode()
    assert [event_for_digit(d) for d in "09*#AD"] == [0, 9, 10, 11, 12, 15]
    with pytest.raises(ValueError):
        event_for_digit("x")


def test_sending_sequence() -> None:
    events = dtmf_events("5", duration_ms=100)
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {5}


def packets_for(digit: str, timestamp: int, first_seq: int, **kw: int) -> list[RtpPacket]:
    return [RtpPacket(101, (first_seq + i) & 0xFFFF, timestamp, 9, e.encode(), i == 0)
            for i, e in enumerate(dtmf_events(digit, **kw))]


def test_detector_reports_each_digit_once() -> None:
    detector = DtmfDetector()
    stream = packets_for("1", 1000, 0) + packets_for("1", 5000, 7) + packets_for("#", 9000, 14)
    found = [d for p in stream for d in detector.push(p)]
    assert found == [DtmfDigit("1", 800, 1000), DtmfDigit("1", 800, 5000), DtmfDigit("#", 800, 9000)]
    assert detector.push(RtpPacket(0, 99, 0, 9, b"\xff" * 160)) == []  # audio is ignored
    assert detector.push(RtpPacket(101, 99, 0, 9, b"\x01")) == []  # malformed is ignored


def test_detector_when_end_packets_are_lost() -> None:
    detector = DtmfDetector()
    first = [p for p in packets_for("7", 1000, 0) if not DtmfEvent.decode(p.payload).end]
    found = [d for p in first for d in detector.push(p)]
    assert found == []
    # the next key press reveals that "7" ended
    found = [d for p in packets_for("8", 3000, 10) for d in detector.push(p)]
    assert [d.digit for d in found] == ["7", "8"]
    # a lone press whose end packets were all lost is reported on flush
    for p in packets_for("9", 6000, 20)[:2]:
        assert detector.push(p) == []
    assert [d.digit for d in detector.flush()] == ["9"] and detector.flush() == []


@settings(max_examples=300, deadline=None, database=None)
@given(digits=st.text(alphabet="0123456789*#ABCD", min_size=1, max_size=8), seed=st.integers(0, 2**16))
def test_detector_under_duplication_and_reordering(digits: str, seed: int) -> None:
    """Duplicated and locally reordered packets still give each key press exactly once."""
    import random

    rng = random.Random(seed)
    stream: list[RtpPacket] = []
    for i, digit in enumerate(digits):
        packets = packets_for(digit, 1000 + 2000 * i, 10 * i)
        packets += [rng.choice(packets) for _ in range(3)]  # duplicates
        body, ends = packets[:4], packets[4:]
        rng.shuffle(ends)  # end packets and duplicates come in any order after the body
        stream += body + ends
    detector = DtmfDetector()
    found = [d for p in stream for d in detector.push(p)] + detector.flush()
    assert "".join(d.digit for d in found) == digits
