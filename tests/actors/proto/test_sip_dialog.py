"""Dialogs (RFC 3261 sec 12): identifiers, route sets, CSeq handling, request construction."""

from __future__ import annotations

import pytest

from actors.proto.sip.dialog import SipDialog
from actors.proto.sip.errors import SipParseError
from actors.proto.sip.headers import Headers
from actors.proto.sip.message import SipRequest, make_response

VIA = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnew"


def invite(record_route: tuple[str, ...] = ()) -> SipRequest:
    return SipRequest("INVITE", "sip:bob@example.com", Headers.of([
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1"), ("From", "Alice <sip:alice@example.com>;tag=a1"),
        ("To", "Bob <sip:bob@example.com>"), ("Call-ID", "c1@192.0.2.1"), ("CSeq", "10 INVITE"),
        ("Contact", "<sip:alice@192.0.2.1:5060>"), *[("Record-Route", r) for r in record_route]]))


def answered(request: SipRequest, record_route: tuple[str, ...] = ()) -> SipDialog:
    response = make_response(request, 200, to_tag="b1", headers=(
        ("Contact", "<sip:bob@192.0.2.9:5070>"), *[("Record-Route", r) for r in record_route]))
    return SipDialog.from_uac(request, response)


def test_uac_dialog_from_2xx() -> None:
    dialog = answered(invite())
    assert dialog.id == ("c1@192.0.2.1", "a1", "b1") and dialog.confirmed
    assert dialog.remote_target == "sip:bob@192.0.2.9:5070" and dialog.local_seq == 10
    assert dialog.destination() == ("192.0.2.9", 5070)
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.uri == "sip:bob@192.0.2.9:5070" and str(bye.cseq) == "11 BYE"
    assert bye.from_.tag == "a1" and bye.to.tag == "b1" and bye.to.display_name == "Bob"
    assert "Route" not in bye.headers and "Contact" not in bye.headers
    reinvite = dialog.create_request("INVITE", via=VIA, contact="<sip:alice@192.0.2.1>")
    assert reinvite.cseq.seq == 12 and reinvite.headers.get("Contact") == "<sip:alice@192.0.2.1>"
    ack = dialog.create_ack(12, via=VIA)
    assert str(ack.cseq) == "12 ACK" and dialog.local_seq == 12  # ACK does not count


def test_uac_route_set_is_reversed_record_route_loose_routing() -> None:
    rr = ("<sip:p2.example.com;lr>", "<sip:p1.example.com:5080;lr>")
    dialog = answered(invite(), rr)
    assert dialog.route_set == ["<sip:p1.example.com:5080;lr>", "<sip:p2.example.com;lr>"]
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.uri == "sip:bob@192.0.2.9:5070"  # loose routing keeps the remote target
    assert bye.headers.get_all("Route") == dialog.route_set
    assert dialog.destination() == ("p1.example.com", 5080)


def test_strict_routing_first_hop() -> None:
    dialog = answered(invite(), ("<sip:p2.example.com;lr>", "<sip:p1.example.com>"))
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.uri == "sip:p1.example.com"
    assert bye.headers.get_all("Route") == ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.9:5070>"]


def test_uas_dialog_and_remote_cseq_order() -> None:
    request = invite(("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    dialog = SipDialog.from_uas(request, "b1")
    assert dialog.id == ("c1@192.0.2.1", "b1", "a1") and not dialog.confirmed
    assert dialog.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]  # in order
    assert dialog.remote_target == "sip:alice@192.0.2.1:5060" and dialog.remote_seq == 10
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.from_.tag == "b1" and bye.to.tag == "a1" and bye.cseq.seq == 1
    incoming = SipRequest("BYE", "sip:bob@x", request.headers.set("CSeq", "11 BYE").set(
        "To", "Bob <sip:bob@example.com>;tag=b1"))
    assert dialog.matches(incoming, incoming_request=True)
    other_call = SipRequest("BYE", "sip:bob@x", incoming.headers.set("Call-ID", "other"))
    assert not dialog.matches(other_call, incoming_request=True)
    assert dialog.check_remote_request(incoming) is None and dialog.remote_seq == 11
    assert dialog.check_remote_request(incoming) == 500  # not higher than the last one
    ack = SipRequest("ACK", "sip:bob@x", incoming.headers.set("CSeq", "10 ACK"))
    assert dialog.check_remote_request(ack) is None  # ACK reuses the INVITE's number


def test_target_refresh_and_missing_tag() -> None:
    dialog = answered(invite())
    refresh = SipRequest("INVITE", "sip:alice@x", invite().headers.set("Contact", "<sip:bob@198.51.100.1:6000>"))
    dialog.update_target(refresh)
    assert dialog.destination() == ("198.51.100.1", 6000)
    with pytest.raises(SipParseError):
        SipDialog.from_uac(invite(), make_response(invite(), 200))  # no To tag
