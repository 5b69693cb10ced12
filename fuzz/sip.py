"""Fuzz harness: SIP messages (datagram and stream framing) and the headers read from them.

Input: bytes as received.  They are parsed as one UDP datagram, as one framed stream message,
and fed to a :class:`SipMessageReader` in two chunks; only :class:`SipError` subclasses may
escape.  A parsed message must give its typed views (Via, From, To, CSeq, Call-ID) without
error, serialise to bytes that parse and serialise the same, be answerable with ``make_response`` (requests), and
its SDP body, ``Contact``/request URI, digest challenge (``WWW-Authenticate`` /
``Proxy-Authenticate``) and credentials (``Authorization``, checked by a
:class:`DigestVerifier`) raise only SIP errors.
"""

from __future__ import annotations

from actors.proto.sip.auth import ClientAuthenticator, DigestCredentials, DigestVerifier
from actors.proto.sip.errors import SipError
from actors.proto.sip.message import SipMessageReader, SipRequest, make_response, parse_message
from actors.proto.sip.sdp import description_in
from actors.proto.sip.values import NameAddress, SipUri

_VERIFIER = DigestVerifier("rtfleet", {"alice": "pw"}, b"fuzz-nonce-key")
_MAX_STREAM_MESSAGES = 16


def _inspect(message) -> None:  # type: ignore[no-untyped-def]
    message.vias, message.via, message.from_, message.to, message.cseq, message.call_id
    message.content_type
    written = message.to_bytes()  # always with a correct Content-Length
    assert parse_message(written).to_bytes() == written, written
    try:
        description_in(message)
    except SipError:
        pass
    try:  # not checked by the parser: the dialog layer reads it and handles SipParseError
        for value in message.headers.get_list("Contact"):
            SipUri.parse(NameAddress.parse(value).uri)
    except SipError:
        pass
    if isinstance(message, SipRequest):
        try:
            SipUri.parse(message.uri)
        except SipError:
            pass
        make_response(message, 200, to_tag="fuzz")
        _VERIFIER.verify(message.headers.get("Authorization"), method=message.method, now=0.0)
    else:
        auth = ClientAuthenticator(DigestCredentials("alice", "pw"))
        if auth.accept(message):
            request = SipRequest("INVITE", "sip:bob@127.0.0.1", message.headers)
            auth.authorize(request, "cnonce")


def check(data: bytes) -> None:
    for stream in (False, True):
        try:
            message = parse_message(data, stream=stream)
        except SipError:
            continue
        _inspect(message)
    reader = SipMessageReader()
    half = len(data) // 2
    for chunk in (data[:half], data[half:], b""):
        reader.receive_data(chunk)
        for _ in range(_MAX_STREAM_MESSAGES):
            try:
                message = reader.next_message()
            except SipError:
                return
            if message is None:
                break
            _inspect(message)


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
