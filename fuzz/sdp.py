"""Fuzz harness: session descriptions (the SIP offer/answer parser and the WebRTC offer checks).

Input: one SDP body.  ``SessionDescription.parse`` may raise only :class:`SdpParseError`; a
parsed description must serialise and parse again to the same value, resolve its codecs, and
be answerable (or refused with :class:`SdpNegotiationError`); negotiating an audio session
against our own offer raises only SIP errors.  The WebRTC answerer's candidate scan
(``offer_candidate_hosts`` / ``host_addresses_for_caller``, run on the raw offer before aiortc
sees it) must not raise at all.
"""

from __future__ import annotations

from actors.proto.sip.errors import SdpNegotiationError, SipError
from actors.proto.sip.sdp import (
    SdpParseError,
    SessionDescription,
    audio_session,
    create_answer,
    create_offer,
)
from standin.sessions.rtc_answer import host_addresses_for_caller, offer_candidate_hosts

_OFFER = create_offer("127.0.0.1", 40000)


def check(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    offer_candidate_hosts(text)
    host_addresses_for_caller(text, "127.0.0.1")
    host_addresses_for_caller(text, None)
    try:
        sdp = SessionDescription.parse(data)
    except SdpParseError:
        return
    again = SessionDescription.parse(sdp.to_bytes())
    assert again.to_bytes() == sdp.to_bytes()
    for media in sdp.media:
        media.codecs()
        media.direction
        media.ptime
    try:
        answer = create_answer(sdp, "127.0.0.1", 40002)
    except SdpNegotiationError:
        pass
    else:
        SessionDescription.parse(answer.to_bytes())
    try:
        audio_session(_OFFER, sdp)
    except SipError:
        pass


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
