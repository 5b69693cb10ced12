"""SIP message parsing and serialising, including fuzzing: only SipParseError may escape."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.proto.sip.errors import SipParseError
from actors.proto.sip.headers import Headers, canonical_name, split_commas
from actors.proto.sip.message import (SipMessageReader, SipRequest, SipResponse, make_response,
                                      parse_message)
from actors.proto.sip.values import CSeq, NameAddress, SipUri, Via

FUZZ = settings(max_examples=2000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice \\"A\\", Esq." <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 13\r\n"
    b"\r\n"
    b"v=0\r\ns=-\r\nt=0"
)

COMPACT = (
    b"BYE sip:alice@192.0.2.1:5070 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKaaa, SIP/2.0/TCP proxy.example.com;branch=z9hG4bKbbb\r\n"
    b"V: SIP/2.0/UDP [2001:db8::1]:5060\r\n"
    b"  ;branch=z9hG4bKccc\r\n"
    b"f: sip:bob@example.com;tag=abc\r\n"
    b"t: <sip:alice@example.com>;tag=xyz\r\n"
    b"i: 1234@host\r\n"
    b"cseq: 7 BYE\r\n"
    b"m: <sip:bob@192.0.2.9:5062>\r\n"
    b"k: timer, 100rel\r\n"
    b"s: a subject\r\n"
    b"l: 0\r\n"
    b"\r\n"
)

RESPONSE = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

SAMPLES = [INVITE, COMPACT, RESPONSE]


def test_request_fields() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    assert (msg.method, msg.uri) == ("INVITE", "sip:bob@biloxi.example.com")
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.cseq == CSeq(314159, "INVITE")
    assert msg.from_.tag == "1928301774"
    assert msg.from_.display_name == 'Alice "A", Esq.'
    assert msg.to.tag is None and msg.to.display_name == "Bob"
    assert msg.via.branch == "z9hG4bK776asdhds"
    assert msg.via.port == 5060 and "rport" in msg.via.params and msg.via.params["rport"] is None
    assert msg.body == b"v=0\r\ns=-\r\nt=0"
    assert msg.content_type == "application/sdp"


def test_compact_forms_multiple_via_and_folding() -> None:
    msg = parse_message(COMPACT)
    assert msg.headers.get("Call-ID") == "1234@host" == msg.headers.get("i")
    assert [v.branch for v in msg.vias] == ["z9hG4bKaaa", "z9hG4bKbbb", "z9hG4bKccc"]
    assert [v.transport for v in msg.vias] == ["UDP", "TCP", "UDP"]
    assert msg.vias[2].host == "[2001:db8::1]" and msg.vias[2].port == 5060
    assert msg.from_.uri == "sip:bob@example.com" and msg.from_.tag == "abc"
    assert msg.headers.get_list("Supported") == ["timer", "100rel"]
    assert msg.headers.get("subject") == "a subject"
    assert msg.cseq == CSeq(7, "BYE")
    # serialised with canonical names
    out = msg.to_bytes()
    assert b"\r\nCall-ID: 1234@host\r\n" in out and b"\r\nCSeq: 7 BYE\r\n" in out


def test_header_names_are_case_insensitive() -> None:
    msg = parse_message(INVITE.replace(b"Call-ID", b"cAlL-iD").replace(b"CSeq", b"CSEQ"))
    assert msg.call_id.startswith("a84b4c76")
    assert msg.headers.get("call-id") == msg.headers.get("I") == msg.headers.get("CALL-ID")
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("X-Custom") == "X-Custom"


def test_response_fields_and_empty_reason() -> None:
    msg = parse_message(RESPONSE)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (180, "Ringing")
    assert msg.to.tag == "a6c85cf"
    assert msg.via.params["received"] == "192.0.2.1"
    bare = parse_message(RESPONSE.replace(b"180 Ringing", b"180 "))
    assert isinstance(bare, SipResponse) and bare.reason == ""


def test_content_length_over_udp() -> None:
    # longer datagram than Content-Length: the body is cut
    assert parse_message(INVITE + b"garbage").body == b"v=0\r\ns=-\r\nt=0"
    # no Content-Length over UDP: the rest of the datagram
    no_cl = INVITE.replace(b"Content-Length: 13\r\n", b"")
    assert parse_message(no_cl).body == b"v=0\r\ns=-\r\nt=0"
    # Content-Length larger than what arrived
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE[:-3])
    assert info.value.status_hint == 400
    with pytest.raises(SipParseError):
        parse_message(INVITE.replace(b"Content-Length: 13", b"Content-Length: x1"))


def test_content_length_required_over_stream() -> None:
    with pytest.raises(SipParseError):
        parse_message(INVITE.replace(b"Content-Length: 13\r\n", b""), stream=True)
    reader = SipMessageReader()
    reader.receive_data(INVITE.replace(b"Content-Length: 13\r\n", b""))
    with pytest.raises(SipParseError):
        reader.next_message()
    with pytest.raises(SipParseError):  # stays broken, like h11
        reader.next_message()


def test_stream_reader_frames_pipelined_messages() -> None:
    reader = SipMessageReader()
    data = b"\r\n\r\n" + INVITE + RESPONSE + b"\r\n" + COMPACT
    for i in range(0, len(data), 7):
        reader.receive_data(data[i : i + 7])
    got = []
    while (msg := reader.next_message()) is not None:
        got.append(msg)
    assert got == [parse_message(INVITE), parse_message(RESPONSE), parse_message(COMPACT)]
    reader.receive_data(INVITE[:40])
    assert reader.next_message() is None
    reader.receive_data(b"")
    with pytest.raises(SipParseError):
        reader.next_message()


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), 400),
        (INVITE.replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b""), 400),
        (INVITE.replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0 UDP"), 400),
        (INVITE.replace(b"CSeq: 314159", b"CSeq: 99999999999"), 400),
        (INVITE.replace(b"To: Bob <sip", b"To: Bob <sip", 1).replace(b"biloxi.example.com>\r\n", b"biloxi\r\n"), 400),
        (b"SIP/2.0 99 Too Low\r\n" + RESPONSE.split(b"\r\n", 1)[1], 400),
        (INVITE.replace(b"Max-Forwards", b"Max Forwards"), 400),
        (b" continuation first\r\n" + INVITE, 400),
        (INVITE.replace(b"To: Bob", b"To: B\x01ob"), 400),
        (INVITE.replace(b"Bob", b"B\xffob"), 400),
        (b"", 400),
        (b"INVITE sip:x SIP/2.0", 400),
    ],
)
def test_malformed_messages_raise_parse_error(data: bytes, hint: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status_hint == hint


def test_serialise_fixes_content_length_and_round_trips() -> None:
    msg = parse_message(INVITE)
    changed = SipRequest(msg.method, msg.uri, msg.headers, b"v=0\r\n")
    out = changed.to_bytes()
    assert b"Content-Length: 5\r\n\r\nv=0\r\n" in out
    assert parse_message(out).body == b"v=0\r\n"
    assert bytes(msg) == msg.to_bytes()
    for sample in SAMPLES:
        once = parse_message(sample).to_bytes()
        assert parse_message(once).to_bytes() == once


def test_make_response_copies_headers_and_adds_tag() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, SipRequest)
    response = make_response(request, 200, to_tag="t1", headers=(("Contact", "<sip:b@h>"),), body=b"x")
    assert (response.status, response.reason) == (200, "OK")
    assert response.headers.get_all("Via") == request.headers.get_all("Via")
    assert response.to.tag == "t1" and response.from_ == request.from_
    assert response.cseq == request.cseq and response.call_id == request.call_id
    trying = make_response(request, 100, to_tag="t1")
    assert trying.to.tag is None  # 100 never carries a tag
    assert parse_message(response.to_bytes()) == parse_message(response.to_bytes())


def test_headers_operations() -> None:
    h = Headers.of([("v", "a"), ("Via", "b"), ("To", "x")])
    assert h.get_all("VIA") == ["a", "b"]
    assert h.prepend("Via", "z").get_all("via") == ["z", "a", "b"]
    assert h.set("via", "only").items == (("Via", "only"), ("To", "x"))
    assert "to" in h and "from" not in h and len(h.remove("via")) == 1
    assert split_commas('"a, b" <sip:x>, <sip:y;p=1,2>, c') == ['"a, b" <sip:x>', "<sip:y;p=1,2>", "c"]
    with pytest.raises(SipParseError):
        split_commas('"unterminated, x')


def test_structured_values() -> None:
    via = Via.parse("SIP / 2.0 / udp  host.example.com : 5062 ; branch=z9hG4bK1 ; received=10.0.0.1")
    assert (via.transport, via.host, via.port, via.branch) == ("UDP", "host.example.com", 5062, "z9hG4bK1")
    assert str(via) == "SIP/2.0/UDP host.example.com:5062;branch=z9hG4bK1;received=10.0.0.1"
    addr = NameAddress.parse("sip:carol@chicago.example.com;tag=88")
    assert addr.uri == "sip:carol@chicago.example.com" and addr.tag == "88"
    assert str(addr) == "<sip:carol@chicago.example.com>;tag=88"
    assert NameAddress.parse("<sip:a@b;lr>").params == {} and NameAddress.parse("*").uri == "*"
    uri = SipUri.parse("sips:alice:secret@[2001:db8::9]:5061;transport=tls?subject=hi")
    assert (uri.scheme, uri.user, uri.host, uri.port) == ("sips", "alice:secret", "[2001:db8::9]", 5061)
    assert uri.address() == ("2001:db8::9", 5061) and uri.params == {"transport": "tls"}
    assert SipUri.parse("sip:10.0.0.1").address() == ("10.0.0.1", 5060)
    for bad in ("sip:", "http://x", "sip:host:99999"):
        with pytest.raises(SipParseError):
            SipUri.parse(bad)


# -- fuzzing -----------------------------------------------------------------------------

def _check_parse(data: bytes, *, stream: bool = False) -> None:
    """Parse must either succeed with readable views and a stable serialisation, or raise
    SipParseError: any other exception fails the test."""
    try:
        msg = parse_message(data, stream=stream)
    except SipParseError as exc:
        assert 400 <= exc.status_hint <= 599
        return
    _ = (msg.call_id, msg.cseq, msg.from_.tag, msg.to.tag, msg.vias, msg.via.branch, msg.content_type)
    once = msg.to_bytes()
    again = parse_message(once)
    assert again.to_bytes() == once
    assert again.body == msg.body


@FUZZ
@given(st.binary(max_size=1500))
def test_fuzz_random_bytes(data: bytes) -> None:
    _check_parse(data)
    _check_parse(data, stream=True)


_SIP_TOKENS = [
    b"\r\n", b" ", b"\t", b":", b";", b",", b"=", b"<", b">", b'"', b"\\", b"@", b"/", b"SIP/2.0",
    b"Via", b"v", b"To", b"t", b"From", b"f", b"Call-ID", b"i", b"CSeq", b"l", b"Content-Length",
    b"INVITE", b"sip:", b"tag", b"branch", b"z9hG4bK", b"1", b"0", b"99999999999", b"a", b"[", b"]",
    b"\x00", b"\xff", b"\xc3\xa9", b"\r", b"\n", b"200", b"ACK", b"\r\n ", b"\r\n\r\n",
]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """1-3 random edits, weighted towards edits that keep the message framed so that the
    deeper layers (header grammar, structured values) get exercised, not just framing."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice([0, 1, 1, 1, 2, 3, 4, 5, 5, 5, 5])
        pos = rng.randint(0, len(buf))
        if kind == 0 and pos < len(buf):  # flip a byte
            buf[pos] = rng.randrange(256)
        elif kind == 1:  # insert grammar-significant bytes
            buf[pos:pos] = rng.choice(_SIP_TOKENS)
        elif kind == 2:  # delete a span
            del buf[pos : pos + rng.randint(1, 20)]
        elif kind == 3:  # truncate
            del buf[pos:]
        else:
            lines = bytes(buf).split(b"\r\n")
            i = rng.randrange(len(lines))
            if kind == 4:  # duplicate a line
                lines.insert(i, lines[i])
            elif b":" in lines[i]:  # replace a header value with junk
                junk = b"".join(rng.choice(_SIP_TOKENS) for _ in range(rng.randint(0, 8)))
                lines[i] = lines[i].split(b":", 1)[0] + b": " + junk
            buf = bytearray(b"\r\n".join(lines))
    return bytes(buf)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    return _mutate(draw(st.sampled_from(SAMPLES)), draw(st.randoms(use_true_random=False)))


@settings(max_examples=2000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_fuzz_mutated_valid_messages(data: bytes) -> None:
    _check_parse(data)
    _check_parse(data, stream=True)


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(SAMPLES), st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_fuzz_stream_chunking_is_irrelevant(sample: bytes, cuts: list[int]) -> None:
    data = sample * 3
    reader = SipMessageReader()
    got = []
    pos = 0
    for cut in cuts * 20:
        if pos >= len(data):
            break
        reader.receive_data(data[pos : pos + cut])
        pos += cut
        while (msg := reader.next_message()) is not None:
            got.append(msg)
    reader.receive_data(data[pos:])
    while (msg := reader.next_message()) is not None:
        got.append(msg)
    assert got == [parse_message(sample, stream=True)] * 3


@settings(max_examples=1500, deadline=None, database=None)
@given(st.text(max_size=80))
def test_fuzz_structured_values(text: str) -> None:
    for parse in (Via.parse, NameAddress.parse, CSeq.parse, SipUri.parse, split_commas):
        try:
            parse(text)
        except SipParseError:
            pass
