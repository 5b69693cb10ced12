"""RFC 3261 sec 17 transactions: retransmission schedules and timeouts on plain ``now`` values."""

from __future__ import annotations

import pytest

from actors.proto.sip.errors import SipStateError
from actors.proto.sip.headers import Headers
from actors.proto.sip.message import SipRequest, make_response, parse_message
from actors.proto.sip.transaction import (ClientInviteTransaction, ClientNonInviteTransaction,
                                          ResponseReceived, ServerInviteTransaction,
                                          ServerNonInviteTransaction, TimerSettings,
                                          TransactionTerminated, TransactionTimeout, TxState,
                                          server_key)

PEER = ("192.0.2.9", 5060)


def request(method: str = "INVITE", branch: str = "z9hG4bKtest1") -> SipRequest:
    return SipRequest(method, "sip:bob@192.0.2.9", Headers.of([
        ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"), ("Max-Forwards", "70"),
        ("From", "<sip:alice@192.0.2.1>;tag=ft"), ("To", "<sip:bob@192.0.2.9>"),
        ("Call-ID", "cid@192.0.2.1"), ("CSeq", f"1 {method}"),
        ("Route", "<sip:proxy.example.com;lr>")]))


def events(tx: object) -> list[object]:
    out = []
    while (event := tx.next_event()) is not None:  # type: ignore[attr-defined]
        out.append(event)
    return out


def run_timers(tx: object, until: float) -> list[tuple[float, int]]:
    """Drive the transaction deadline by deadline; returns (time, datagrams sent)."""
    sent = []
    while (deadline := tx.get_timer()) is not None and deadline <= until:  # type: ignore[attr-defined]
        tx.handle_timer(deadline)  # type: ignore[attr-defined]
        sent.append((deadline, len(tx.datagrams_to_send())))  # type: ignore[attr-defined]
    return sent


def test_client_invite_timer_a_and_b() -> None:
    tx = ClientInviteTransaction.start(request(), PEER, now=0.0)
    assert [d for d, _ in tx.datagrams_to_send()] == [request().to_bytes()]
    assert tx.get_timer() == 0.5
    schedule = run_timers(tx, until=100.0)
    assert schedule == [(0.5, 1), (1.5, 1), (3.5, 1), (7.5, 1), (15.5, 1), (31.5, 1), (32.0, 0)]
    assert events(tx) == [TransactionTimeout("B"), TransactionTerminated()]
    assert tx.terminated and tx.get_timer() is None


def test_client_invite_configurable_t1() -> None:
    tx = ClientInviteTransaction.start(request(), PEER, now=10.0, timers=TimerSettings(t1=0.1))
    tx.datagrams_to_send()
    times = [t for t, _ in run_timers(tx, until=100.0)]
    assert times == pytest.approx([10.1, 10.3, 10.7, 11.5, 13.1, 16.3, 16.4])


def test_client_invite_late_timer_call_catches_up() -> None:
    tx = ClientInviteTransaction.start(request(), PEER, now=0.0)
    tx.datagrams_to_send()
    tx.handle_timer(10.0)
    assert len(tx.datagrams_to_send()) == 4  # 0.5, 1.5, 3.5, 7.5
    assert tx.get_timer() == 15.5


def test_client_invite_provisional_then_error_is_acked() -> None:
    invite = request()
    tx = ClientInviteTransaction.start(invite, PEER, now=0.0)
    tx.datagrams_to_send()
    ringing = make_response(invite, 180, to_tag="tt")
    tx.receive_response(ringing, now=0.2)
    assert tx.state is TxState.PROCEEDING and tx.get_timer() is None  # no A, no B
    busy = make_response(invite, 486, to_tag="tt")
    tx.receive_response(busy, now=1.0)
    assert tx.state is TxState.COMPLETED
    (ack_bytes, dest), = tx.datagrams_to_send()
    ack = parse_message(ack_bytes)
    assert dest == PEER and isinstance(ack, SipRequest)
    assert ack.method == "ACK" and ack.uri == invite.uri
    assert ack.via.branch == "z9hG4bKtest1" and ack.to.tag == "tt"
    assert str(ack.cseq) == "1 ACK" and ack.headers.get_all("Route") == ["<sip:proxy.example.com;lr>"]
    tx.receive_response(busy, now=2.0)  # retransmitted final: ACK again, not reported
    assert [d for d, _ in tx.datagrams_to_send()] == [ack_bytes]
    assert events(tx) == [ResponseReceived(ringing), ResponseReceived(busy)]
    assert tx.get_timer() == 33.0  # timer D = 32 s
    tx.handle_timer(33.0)
    assert events(tx) == [TransactionTerminated()]


def test_client_invite_2xx_accepted_state() -> None:
    invite = request()
    tx = ClientInviteTransaction.start(invite, PEER, now=0.0)
    ok = make_response(invite, 200, to_tag="tt")
    tx.receive_response(ok, now=0.7)
    tx.receive_response(ok, now=1.2)  # retransmission goes to the TU, which re-ACKs
    assert tx.state is TxState.ACCEPTED
    assert events(tx) == [ResponseReceived(ok), ResponseReceived(ok)]
    assert tx.get_timer() == 32.7  # timer M
    tx.handle_timer(32.7)
    assert tx.terminated


def test_terminate_destroys_a_proceeding_invite() -> None:
    invite = request()
    tx = ClientInviteTransaction.start(invite, PEER, now=0.0)
    tx.receive_response(make_response(invite, 180, to_tag="tt"), now=0.1)
    assert tx.get_timer() is None  # Proceeding has no timer: only the TU can end it
    tx.terminate()
    tx.terminate()
    assert tx.terminated and events(tx)[-1] == TransactionTerminated()


def test_client_non_invite_timer_e_capped_at_t2() -> None:
    tx = ClientNonInviteTransaction.start(request("BYE"), PEER, now=0.0)
    tx.datagrams_to_send()
    times = [t for t, n in run_timers(tx, until=100.0) if n]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events(tx) == [TransactionTimeout("F"), TransactionTerminated()]


def test_client_non_invite_proceeding_and_completed() -> None:
    bye = request("BYE")
    tx = ClientNonInviteTransaction.start(bye, PEER, now=0.0)
    tx.datagrams_to_send()
    tx.receive_response(make_response(bye, 100), now=0.2)
    assert tx.state is TxState.PROCEEDING
    assert [t for t, _ in run_timers(tx, until=10.0)] == [0.5, 4.5, 8.5]  # then every T2
    ok = make_response(bye, 200, to_tag="x")
    tx.receive_response(ok, now=9.0)
    tx.receive_response(ok, now=9.5)  # absorbed
    assert [type(e) for e in events(tx)] == [ResponseReceived, ResponseReceived]
    assert tx.get_timer() == 14.0  # timer K = T4
    tx.handle_timer(14.0)
    assert tx.terminated


def test_server_invite_trying_and_retransmissions() -> None:
    invite = request()
    tx = ServerInviteTransaction.start(invite, PEER, now=0.0)
    (trying, dest), = tx.datagrams_to_send()
    assert dest == PEER and trying.startswith(b"SIP/2.0 100 Trying")
    tx.receive_request(invite, now=0.5)
    assert [d for d, _ in tx.datagrams_to_send()] == [trying]
    ringing = make_response(invite, 180, to_tag="tt")
    tx.send_response(ringing, now=1.0)
    tx.receive_request(invite, now=1.5)
    assert [d for d, _ in tx.datagrams_to_send()] == [ringing.to_bytes()] * 2
    assert tx.get_timer() is None and tx.key == server_key(invite)


def test_server_invite_error_retransmits_until_ack() -> None:
    invite = request()
    tx = ServerInviteTransaction.start(invite, PEER, now=0.0, send_trying=False)
    assert tx.datagrams_to_send() == []
    tx.send_response(make_response(invite, 486, to_tag="tt"), now=0.0)
    tx.datagrams_to_send()
    assert [t for t, _ in run_timers(tx, until=8.0)] == [0.5, 1.5, 3.5, 7.5]
    ack = SipRequest("ACK", invite.uri, invite.headers.set("CSeq", "1 ACK"))
    tx.receive_request(ack, now=8.0)
    assert tx.state is TxState.CONFIRMED and tx.get_timer() == 13.0  # timer I = T4
    tx.receive_request(ack, now=9.0)  # absorbed
    assert tx.datagrams_to_send() == []
    tx.handle_timer(13.0)
    assert events(tx) == [TransactionTerminated()]


def test_server_invite_timer_h_without_ack() -> None:
    invite = request()
    tx = ServerInviteTransaction.start(invite, PEER, now=0.0)
    tx.send_response(make_response(invite, 503, to_tag="tt"), now=0.0)
    sent = run_timers(tx, until=100.0)
    assert [t for t, n in sent if n] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events(tx) == [TransactionTimeout("H"), TransactionTerminated()]


def test_server_invite_2xx_accepted_and_local_errors() -> None:
    invite = request()
    tx = ServerInviteTransaction.start(invite, PEER, now=0.0)
    tx.datagrams_to_send()
    ok = make_response(invite, 200, to_tag="tt")
    tx.send_response(ok, now=1.0)
    assert tx.state is TxState.ACCEPTED
    tx.receive_request(invite, now=1.2)  # absorbed: the TU retransmits 2xx itself
    assert len(tx.datagrams_to_send()) == 1
    tx.send_response(ok, now=1.5)  # the TU's retransmission passes through
    assert len(tx.datagrams_to_send()) == 1
    with pytest.raises(SipStateError):
        tx.send_response(make_response(invite, 486, to_tag="tt"), now=1.6)
    assert tx.state is TxState.ACCEPTED
    tx.handle_timer(33.0)  # timer L
    assert tx.terminated


def test_server_non_invite() -> None:
    bye = request("BYE")
    tx = ServerNonInviteTransaction.start(bye, PEER, now=0.0)
    tx.receive_request(bye, now=0.1)  # Trying: retransmission discarded
    assert tx.datagrams_to_send() == []
    ok = make_response(bye, 200)
    tx.send_response(ok, now=0.2)
    tx.receive_request(bye, now=0.3)
    assert [d for d, _ in tx.datagrams_to_send()] == [ok.to_bytes()] * 2
    with pytest.raises(SipStateError):
        tx.send_response(ok, now=0.4)
    assert tx.get_timer() == pytest.approx(32.2)  # timer J
    tx.handle_timer(40.0)
    assert events(tx) == [TransactionTerminated()]


def test_server_key_ack_matches_invite_and_rfc2543_fallback() -> None:
    invite = request()
    ack = SipRequest("ACK", invite.uri, invite.headers.set("CSeq", "1 ACK"))
    cancel = SipRequest("CANCEL", invite.uri, invite.headers.set("CSeq", "1 CANCEL"))
    assert server_key(ack) == server_key(invite) != server_key(cancel)
    old = SipRequest("INVITE", invite.uri, invite.headers.set("Via", "SIP/2.0/UDP 192.0.2.1"))
    assert server_key(old)[0] == "server-2543"
