"""SDP parse/serialise and G.711 offer/answer."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.proto.sip.errors import SdpNegotiationError, SipParseError
from actors.proto.sip.sdp import (PCMA, PCMU, TELEPHONE_EVENT, Codec, SdpParseError,
                                  SessionDescription, answer_direction, audio_session,
                                  create_answer, create_offer)

# A typical SIP trunk offer (PROTOCOL.md sec 5), with lines we do not interpret.
TRUNK_OFFER = (
    b"v=0\r\n"
    b"o=- 3868331520 3868331520 IN IP4 198.51.100.7\r\n"
    b"s=SIP Call\r\n"
    b"i=a session\r\n"
    b"c=IN IP4 198.51.100.7\r\n"
    b"b=AS:84\r\n"
    b"t=0 0\r\n"
    b"a=tool:something\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\n"
    b"b=TIAS:64000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
    b"m=video 0 RTP/AVP 96\r\n"
)


def test_parse_typical_offer() -> None:
    sdp = SessionDescription.parse(TRUNK_OFFER)
    assert sdp.origin.address == "198.51.100.7" and sdp.origin.session_version == 3868331520
    audio = sdp.audio
    assert audio is not None and audio.port == 40000 and audio.formats == ("0", "8", "101")
    assert audio.codecs() == [PCMU, PCMA, TELEPHONE_EVENT]
    assert audio.ptime == 20 and audio.direction == "sendrecv"
    assert sdp.connection_address_for(audio) == "198.51.100.7"
    assert len(sdp.media) == 2 and sdp.media[1].port == 0


def test_round_trip_keeps_everything() -> None:
    sdp = SessionDescription.parse(TRUNK_OFFER)
    assert sdp.to_bytes() == TRUNK_OFFER
    assert SessionDescription.parse(sdp.to_bytes()) == sdp
    lf_only = SessionDescription.parse(TRUNK_OFFER.replace(b"\r\n", b"\n"))
    assert lf_only == sdp


def test_static_payload_types_without_rtpmap() -> None:
    sdp = SessionDescription.parse(b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\n"
                                   b"t=0 0\r\nm=audio 5004 RTP/AVP 8 0 18\r\n")
    assert sdp.audio is not None
    assert [c.name for c in sdp.audio.codecs()] == ["PCMA", "PCMU", "G729"]


def test_offer_matches_protocol_example() -> None:
    offer = create_offer("192.0.2.1", 40000, session_id="42", session_version=1).to_bytes().decode()
    assert "m=audio 40000 RTP/AVP 0 8 101\r\n" in offer
    for line in ("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
                 "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv", "c=IN IP4 192.0.2.1",
                 "o=rtfleet 42 1 IN IP4 192.0.2.1"):
        assert line + "\r\n" in offer


def test_answer_picks_first_common_codec_and_keeps_event_pt() -> None:
    offer = SessionDescription.parse(TRUNK_OFFER.replace(b"telephone-event/8000\r\na=fmtp:101",
                                                         b"telephone-event/8000\r\na=fmtp:101")
                                     .replace(b"101", b"96"))
    answer = create_answer(offer, "192.0.2.2", 50000)
    audio = answer.audio
    assert audio is not None and audio.formats == ("0", "96")
    assert audio.codecs() == [PCMU, TELEPHONE_EVENT.with_payload_type(96)]
    # the answer has one m-line per offered one; the video line is rejected
    assert [m.port for m in answer.media] == [50000, 0]
    # prefer the offerer's order, restricted to what we support
    only_a = create_answer(offer, "192.0.2.2", 50000, codecs=(PCMA,), dtmf=False)
    assert only_a.audio is not None and only_a.audio.codecs() == [PCMA]


def test_no_common_codec_is_488() -> None:
    offer = create_offer("192.0.2.1", 40000, codecs=(Codec(111, "opus", 48000, 2),))
    with pytest.raises(SdpNegotiationError) as info:
        create_answer(offer, "192.0.2.2", 50000)
    assert info.value.status_hint == 488


@pytest.mark.parametrize(("offered", "preferred", "answer"), [
    ("sendrecv", "sendrecv", "sendrecv"), ("sendonly", "sendrecv", "recvonly"),
    ("recvonly", "sendrecv", "sendonly"), ("inactive", "sendrecv", "inactive"),
    ("sendrecv", "recvonly", "recvonly"), ("sendonly", "sendonly", "inactive"),
])
def test_direction_negotiation(offered: str, preferred: str, answer: str) -> None:
    assert answer_direction(offered, preferred) == answer
    offer = create_offer("192.0.2.1", 4000, direction=offered)
    made = create_answer(offer, "192.0.2.2", 5000, direction=preferred)
    assert made.audio is not None and made.audio.direction == answer


def test_audio_session_from_both_sides() -> None:
    offer = create_offer("192.0.2.1", 40000)
    answer = create_answer(offer, "192.0.2.2", 50000, codecs=(PCMA, PCMU))
    uac = audio_session(local=offer, remote=answer)
    uas = audio_session(local=answer, remote=offer)
    assert uac.remote_address == ("192.0.2.2", 50000) and uas.remote_address == ("192.0.2.1", 40000)
    assert uac.codec == uas.codec == PCMU  # the offerer preferred PCMU and we support it
    assert uac.dtmf == uas.dtmf == TELEPHONE_EVENT and uac.ptime == 20


@pytest.mark.parametrize("data", [
    b"", b"v=1\r\n", b"v=0\r\ns=-\r\n", b"v=0\r\no=- 1 x IN IP4 a\r\n",
    b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio\r\n", b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 70000 RTP/AVP 0\r\n",
    b"v=0\r\no=- 1 1 IN IP4 a\r\nbogus\r\n", b"v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4\r\n", b"\xff\xfe",
])
def test_malformed_sdp(data: bytes) -> None:
    with pytest.raises(SdpParseError) as info:
        SessionDescription.parse(data)
    assert isinstance(info.value, SipParseError)


@settings(max_examples=1500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.lists(
    st.sampled_from([b"v=0", b"o=- 1 2 IN IP4 h", b"s=-", b"c=IN IP4 1.2.3.4", b"t=0 0",
                     b"m=audio 4000 RTP/AVP 0 8 101", b"m=audio 0 RTP/AVP 0", b"a=rtpmap:101 telephone-event/8000",
                     b"a=rtpmap:0 PCMU/8000/1", b"a=fmtp:101 0-16", b"a=ptime:", b"a=ptime:99999999",
                     b"a=sendonly", b"m=audio x RTP/AVP", b"a=rtpmap:x", b"b=AS:1", b"\xff", b"m=audio 1 RTP/AVP 999999"]),
    max_size=12).map(lambda lines: b"\r\n".join(lines)))
def test_fuzz_sdp_raises_only_parse_error(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(data)
    except SdpParseError:
        return
    assert SessionDescription.parse(sdp.to_bytes()).to_bytes() == sdp.to_bytes()
    for media in sdp.media:
        media.codecs(), media.ptime, media.direction
    try:
        create_answer(sdp, "192.0.2.2", 5000)
    except SdpNegotiationError:
        pass
