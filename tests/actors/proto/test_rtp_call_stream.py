"""RtpStream (the RTP media both SIP ends share) back to back, without sockets: times are numbers."""

from __future__ import annotations

import random

from actors.proto.rtp import PCMU_SILENCE, RtpPacket, dtmf_events
from actors.proto.rtp.stream import RtpStream


def _pair() -> tuple[RtpStream, RtpStream]:
    a = RtpStream.create(0, 101, jitter=True, track_echo=True, rng=random.Random(1))
    b = RtpStream.create(0, 101, rng=random.Random(2))
    a.start(0.0)
    b.start(0.0)
    return a, b


def test_ticks_send_queued_audio_then_silence_on_the_20ms_schedule() -> None:
    a, _ = _pair()
    a.play([b"\x01" * 160, b"\x02" * 160])
    sent = [RtpPacket.decode(d) for t in (0.0, 0.020, 0.040) for d in a.tick(t)]
    assert [p.payload[:1] for p in sent] == [b"\x01", b"\x02", b"\xff"]
    assert [p.sequence - sent[0].sequence for p in sent] == [0, 1, 2]
    assert a.audio_frames_sent == 2 and a.frames_played_ms == 40.0 and a.queued_frames == 0
    assert a.next_deadline() == 0.060
    # a stalled wake-up catches up (at most the pacer's burst) and records its lateness
    assert len(a.tick(0.101)) == 3 and max(a.lateness.samples) > 0.04


def test_audio_without_jitter_buffer_is_handed_out_at_once_and_digits_once() -> None:
    a, b = _pair()
    (datagram,) = a.tick(0.0)
    received = b.receive(datagram, 0.001)
    assert received is not None and received.audio == PCMU_SILENCE and not received.echo
    stamp = a.packetizer.timestamp
    digits = []
    for k, event in enumerate(dtmf_events("7")):
        packet = a.packetizer.packetize_event(event.encode(), payload_type=101, timestamp=stamp,
                                              marker=k == 0)
        got = b.receive(packet, 0.01)
        assert got is not None and got.audio is None
        digits += got.digits
    assert digits == ["7"] and b.rtp_received == 1 + len(dtmf_events("7"))
    assert b.receive(b"\x80\x00garbage", 0.02) is None  # not RTP: dropped, counted elsewhere


def test_jitter_buffer_plays_one_frame_per_frame_sent_and_echo_gives_a_round_trip() -> None:
    a, b = _pair()
    for i in range(5):  # the far end's frames arrive
        (datagram,) = b.tick(i * 0.020)
        assert a.receive(datagram, i * 0.020 + 0.001).audio is None  # held by the jitter buffer
    heard = []
    for i in range(5):
        assert len(a.tick(i * 0.020)) == 1
        heard += a.take_audio()
    assert len(heard) == 5 and all(f == PCMU_SILENCE for f in heard)

    echoing, _ = _pair()  # a peer that echoes our own packets back (sipp -rtp_echo)
    for i in range(5):
        (mine,) = echoing.tick(i * 0.020)
        echo = echoing.receive(mine, i * 0.020 + 0.003)
        assert echo is not None and echo.echo and abs(echo.rtt - 0.003) < 1e-9
    assert len(echoing.echo_rtt.samples) == 5
