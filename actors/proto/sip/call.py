"""One call leg as a state machine: the UAC and UAS core of RFC 3261 sec 13-15.

:class:`SipCall` owns the dialog, the INVITE/CANCEL/BYE/re-INVITE client transactions it
started, the 2xx retransmission of RFC 3261 13.3.1.4 and digest retries.  It never sees
bytes from the network: :class:`~actors.proto.sip.useragent.SipUserAgent` parses,
matches messages to transactions and calls, and hands them in.  The call talks back to
the user agent through the small :class:`~actors.proto.sip.config.CallCore` protocol.

States (``CALL_TRANSITIONS`` is the table; an illegal step raises SipStateError)::

    UAC:  CALLING -> EARLY -> CONFIRMED -> TERMINATING -> TERMINATED
    UAS:  INCOMING -> EARLY -> ANSWERED (2xx sent, awaiting ACK) -> CONFIRMED -> ...

Every call reports exactly one terminal event (CallEnded, CallCancelled, CallFailed).
``hangup`` works in every state and does the right thing: CANCEL before an answer (after
the first provisional response, RFC 3261 9.1), 603 for an unanswered incoming call, BYE
once the call is up (deferred until the ACK on the UAS side, RFC 3261 15).
"""

from __future__ import annotations

import enum

import attrs

from .auth import ClientAuthenticator
from .config import ALLOW, CallCore
from .dialog import SipDialog
from .errors import SipParseError, SipStateError
from .events import (CallAnswered, CallCancelled, CallConfirmed, CallEnded, CallFailed,
                     CallRinging, CallTrying, CallUpdated, CallUpdateFailed, IncomingCall)
from .message import SipRequest, SipResponse, make_response
from .sdp import SessionDescription, description_in
from .transaction import (ClientInviteTransaction, ClientNonInviteTransaction,
                          ServerInviteTransaction, ServerNonInviteTransaction, TxState,
                          make_cancel)
from .values import Address

__all__ = ["CallState", "CALL_TRANSITIONS", "SipCall"]


class CallState(enum.Enum):
    CALLING = "calling"
    INCOMING = "incoming"
    EARLY = "early"
    ANSWERED = "answered"
    CONFIRMED = "confirmed"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


C = CallState
CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    C.CALLING: frozenset({C.EARLY, C.CONFIRMED, C.TERMINATING, C.TERMINATED}),
    C.INCOMING: frozenset({C.EARLY, C.ANSWERED, C.TERMINATED}),
    C.EARLY: frozenset({C.ANSWERED, C.CONFIRMED, C.TERMINATING, C.TERMINATED}),
    C.ANSWERED: frozenset({C.CONFIRMED, C.TERMINATING, C.TERMINATED}),
    C.CONFIRMED: frozenset({C.TERMINATING, C.TERMINATED}),
    C.TERMINATING: frozenset({C.TERMINATED}),
    C.TERMINATED: frozenset(),
}


@attrs.define(eq=False)
class SipCall:
    """The state of one call; driven by the user agent, never by I/O."""

    core: CallCore
    call_id: str
    role: str  # "uac" or "uas"
    state: CallState
    destination: Address
    dialog: SipDialog | None = None
    local_sdp: bytes | None = None
    remote_sdp: SessionDescription | None = None
    _invite: SipRequest | None = None
    _server_tx: ServerInviteTransaction | None = None
    _txs: dict[str, ClientInviteTransaction | ClientNonInviteTransaction] = attrs.field(factory=dict)
    _acks: dict[tuple[int, str], tuple[bytes, Address]] = attrs.field(factory=dict)
    _pending_2xx: tuple[bytes, Address, int] | None = None
    _deadlines: dict[str, float] = attrs.field(factory=dict)
    _intervals: dict[str, float] = attrs.field(factory=dict)
    _auth: ClientAuthenticator = attrs.field(factory=ClientAuthenticator)
    _trying_reported: bool = False
    _provisional: bool = False
    _cancel_requested: bool = False
    _cancel_sent: bool = False
    _timed_out: bool = False
    _bye_pending: bool = False
    _terminal_reported: bool = False

    # -- construction --------------------------------------------------------------------

    @classmethod
    def outgoing(cls, core: CallCore, call_id: str, target: str, sdp: bytes | None, now: float,
                 destination: Address, headers: tuple[tuple[str, str], ...] = ()) -> "SipCall":
        """Place a call: send the INVITE (UAC)."""
        cfg = core.config
        invite = cfg.new_request("INVITE", target, via=core.via(), call_id=call_id,
                                 tag=core.new_tag(), headers=headers, body=sdp or b"")
        call = cls(core, call_id, "uac", C.CALLING, destination, local_sdp=sdp, invite=invite,
                   auth=ClientAuthenticator(cfg.credentials))
        call._start("invite", invite, destination, now)
        if cfg.invite_timeout is not None:
            call._deadlines["no-answer"] = now + cfg.invite_timeout
        return call

    @classmethod
    def incoming(cls, core: CallCore, tx: ServerInviteTransaction, request: SipRequest,
                 remote_sdp: SessionDescription | None) -> "SipCall":
        """A new incoming INVITE (UAS); reports IncomingCall."""
        call = cls(core, request.call_id, "uas", C.INCOMING, tx.destination,
                   dialog=SipDialog.from_uas(request, core.new_tag()), remote_sdp=remote_sdp,
                   invite=request, server_tx=tx)
        core.emit(IncomingCall(request.call_id, request.from_, request.to, remote_sdp,
                               tx.destination, request))
        return call

    # -- local actions -------------------------------------------------------------------

    def ring(self, now: float, sdp: bytes | None = None) -> None:
        """Send 180 Ringing (or 183 Session Progress with early-media SDP)."""
        self._require(C.INCOMING, C.EARLY, role="uas")
        self._answer_invite(183 if sdp else 180, now, sdp)
        if self.state is C.INCOMING:
            self._goto(C.EARLY)

    def answer(self, sdp: bytes | None, now: float) -> None:
        """Send 200 OK with our SDP; it is retransmitted until the ACK arrives."""
        self._require(C.INCOMING, C.EARLY, role="uas")
        assert self.dialog is not None and self._invite is not None
        self.local_sdp = sdp
        data = self._answer_invite(200, now, sdp)
        self.dialog.confirmed = True
        self._await_ack(data, self.destination, self._invite.cseq.seq, now)
        self._goto(C.ANSWERED)

    def reject(self, status: int, now: float, reason: str | None = None,
               headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Refuse an incoming call with a 3xx-6xx status (``headers``: e.g. a 302's Contact)."""
        self._require(C.INCOMING, C.EARLY, role="uas")
        if not 300 <= status <= 699:
            raise SipStateError(f"reject needs a 3xx-6xx status, not {status}")
        self._answer_invite(status, now, None, reason, extra=headers)
        self._finish(CallEnded(self.call_id, "local", f"rejected with {status}"))

    def hangup(self, now: float) -> None:
        """End the call in whatever way its state calls for (idempotent)."""
        state = self.state
        if state in (C.TERMINATING, C.TERMINATED):
            return
        if self.role == "uac" and state in (C.CALLING, C.EARLY):
            self._cancel_requested = True
            self._goto(C.TERMINATING)
            if self._provisional:  # RFC 3261 9.1: only once a provisional response arrived
                self._send_cancel(now)
        elif self.role == "uas" and state in (C.INCOMING, C.EARLY):
            self.reject(603, now)
        elif state is C.ANSWERED:
            self._bye_pending = True
            self._goto(C.TERMINATING)
        else:
            self._send_bye(now)

    def reinvite(self, sdp: bytes, now: float) -> None:
        """Send a re-INVITE with a new offer (hold, codec change, session refresh)."""
        self._require(C.CONFIRMED)
        if "reinvite" in self._txs or self._pending_2xx is not None:
            raise SipStateError("a re-INVITE is already in progress")
        assert self.dialog is not None
        self.local_sdp = sdp
        request = self.dialog.create_request(
            "INVITE", via=self.core.via(), contact=self.core.config.contact,
            headers=(("Allow", ALLOW), ("Content-Type", "application/sdp")), body=sdp)
        request = self._with_auth(request)
        self._start("reinvite", request, self.dialog.destination(), now)

    # -- input from the user agent -------------------------------------------------------

    def on_response(self, tx: object, response: SipResponse, now: float) -> None:
        role = self._role(tx)
        if role is None:
            if 200 <= response.status < 300 and response.cseq.method == "INVITE":
                self.on_stray_2xx(response, now)
            return
        if response.status in (401, 407) and role != "cancel" and self._retry_with_auth(role, response, now):
            return
        if response.status >= 200:
            del self._txs[role]
        if role == "invite":
            self._invite_response(response, now)
        elif role == "reinvite":
            self._reinvite_response(response, now)
        elif role == "bye" and response.status >= 200:
            self._finish(CallEnded(self.call_id, "local", "bye"))

    def on_timeout(self, tx: object, now: float) -> None:
        role = self._role(tx)
        if role is None:
            return
        del self._txs[role]
        if role == "invite":
            self._finish(self._unanswered_end(408, "no response"))
        elif role == "bye":
            self._finish(CallEnded(self.call_id, "local", "BYE timed out"))
        elif role == "reinvite":
            self.core.emit(CallUpdateFailed(self.call_id, 408, "re-INVITE timed out"))
            self.hangup(now)

    def on_stray_2xx(self, response: SipResponse, now: float) -> None:
        """A 2xx after the first one: a retransmission (send the ACK again) or a forked
        answer from another To tag (acknowledge it and end that leg with a BYE)."""
        ack = self._acks.get((response.cseq.seq, response.to.tag or ""))
        if ack is not None:
            self.core.send_datagram(*ack)
        elif self._invite is not None and self.dialog and response.cseq.seq == self._invite.cseq.seq:
            try:
                fork = SipDialog.from_uac(self._invite, response)
            except SipParseError:
                return  # a 2xx that cannot form a dialog (no To tag): nothing to acknowledge
            self._send_ack(fork, now)
            bye = fork.create_request("BYE", via=self.core.via())
            self.core.start_client_transaction(bye, fork.destination(), None, now)

    def on_ack(self, request: SipRequest, now: float) -> None:
        """The ACK for our 2xx (UAS, or UAC after answering a re-INVITE)."""
        if self._pending_2xx is None or request.cseq.seq != self._pending_2xx[2]:
            return
        self._pending_2xx = None
        self._cancel_deadlines("2xx", "ack")
        sdp = description_in(request)
        if self.state is C.ANSWERED:
            if sdp is not None:
                self.remote_sdp = sdp
            self._goto(C.CONFIRMED)
            self.core.emit(CallConfirmed(self.call_id, sdp))
        elif self.state is C.TERMINATING and self._bye_pending:
            self._send_bye(now)
        elif sdp is not None:
            self.remote_sdp = sdp
            self.core.emit(CallUpdated(self.call_id, sdp))

    def on_cancel(self, now: float) -> None:
        """The peer cancelled its INVITE (the 200 for the CANCEL is already sent)."""
        if self.role == "uas" and self.state in (C.INCOMING, C.EARLY):
            self._answer_invite(487, now, None)
            self._finish(CallCancelled(self.call_id, "remote"))

    def on_request(self, tx: ServerInviteTransaction | ServerNonInviteTransaction,
                   request: SipRequest, now: float) -> None:
        """An in-dialog BYE or re-INVITE from the peer (the agent answers the rest)."""
        assert self.dialog is not None
        status = self.dialog.check_remote_request(request)
        if status is not None:
            tx.send_response(make_response(request, status), now)
            return
        if request.method == "BYE":
            tx.send_response(make_response(request, 200), now)
            if self.role == "uas" and self.state in (C.INCOMING, C.EARLY):
                self._answer_invite(487, now, None)
            self._finish(CallEnded(self.call_id, "remote", "bye"))
        else:
            self._on_reinvite(tx, request, now)

    def abort(self, now: float, status: int, reason: str) -> None:
        """Give up after unusable input from the peer: report CallFailed and hang up."""
        self._report(CallFailed(self.call_id, status, reason))
        self.hangup(now)

    # -- timers --------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def handle_timer(self, now: float) -> None:
        """Fire due call timers, earliest first: 2xx retransmission, ACK wait, CANCEL wait,
        no-answer."""
        while due := [(t, name) for name, t in self._deadlines.items() if t <= now]:
            deadline, name = min(due)
            del self._deadlines[name]
            if name == "2xx" and self._pending_2xx is not None:
                data, dest, _ = self._pending_2xx
                self.core.send_datagram(data, dest)
                interval = min(self._intervals["2xx"] * 2, self.core.config.timers.t2)
                self._intervals["2xx"] = interval
                self._deadlines["2xx"] = deadline + interval
            elif name == "ack":
                self._pending_2xx = None
                self._cancel_deadlines("2xx")
                self._report(CallFailed(self.call_id, 408, "no ACK for our 2xx"))
                self._bye_pending = False
                self._send_bye(now)
            elif name == "cancel":  # no final response 64*T1 after CANCEL (RFC 3261 9.1)
                invite_tx = self._txs.pop("invite", None)
                if invite_tx is not None:
                    invite_tx.terminate()
                self._finish(self._unanswered_end(487, "cancelled"))
            elif name == "no-answer" and self.state in (C.CALLING, C.EARLY):
                self._timed_out = True
                self.hangup(now)

    @property
    def finished(self) -> bool:
        """Terminated with no timer left (the user agent may forget the call)."""
        return self.state is C.TERMINATED and not self._deadlines

    # -- internals -----------------------------------------------------------------------

    def _role(self, tx: object) -> str | None:
        return next((r for r, t in self._txs.items() if t is tx), None)

    def _require(self, *states: CallState, role: str | None = None) -> None:
        if self.state not in states or (role is not None and self.role != role):
            raise SipStateError(f"call {self.call_id} ({self.role}) is {self.state.value}")

    def _goto(self, state: CallState) -> None:
        if state not in CALL_TRANSITIONS[self.state]:
            raise SipStateError(f"call {self.call_id}: illegal transition "
                                f"{self.state.value} -> {state.value}")
        self.state = state

    def _report(self, event: object) -> None:
        if not self._terminal_reported:
            self._terminal_reported = True
            self.core.emit(event)

    def _finish(self, event: object) -> None:
        self._report(event)
        if self.state is not C.TERMINATED:
            self._goto(C.TERMINATED)
        self._deadlines.clear()
        self._pending_2xx = None
        for role in ("invite", "reinvite"):  # a Proceeding INVITE has no timer of its own
            tx = self._txs.get(role)
            if tx is not None and tx.state in (TxState.CALLING, TxState.PROCEEDING):
                del self._txs[role]
                tx.terminate()

    def _unanswered_end(self, status: int, reason: str) -> object:
        if self._timed_out:
            return CallFailed(self.call_id, 408, "no answer")
        if self._cancel_requested:
            return CallCancelled(self.call_id, "local")
        return CallFailed(self.call_id, status, reason)

    def _cancel_deadlines(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def _start(self, role: str, request: SipRequest, destination: Address, now: float) -> None:
        self._txs[role] = self.core.start_client_transaction(request, destination, self, now)

    def _answer_invite(self, status: int, now: float, body: bytes | None,
                       reason: str | None = None, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
        assert self._invite is not None and self._server_tx is not None and self.dialog
        headers: list[tuple[str, str]] = [("Record-Route", r) for r in
                                          self._invite.headers.get_all("Record-Route")]
        headers += extra
        if status < 300:
            headers += [("Contact", self.core.config.contact), ("Allow", ALLOW)]
        headers.append(("Server", self.core.config.user_agent))
        if body:
            headers.append(("Content-Type", "application/sdp"))
        response = make_response(self._invite, status, reason, to_tag=self.dialog.local_tag,
                                 headers=tuple(headers), body=body or b"")
        self._server_tx.send_response(response, now)
        return response.to_bytes()

    def _await_ack(self, data: bytes, destination: Address, cseq: int, now: float) -> None:
        """Retransmit our 2xx (T1, doubling up to T2) until the ACK or 64*T1."""
        t1 = self.core.config.timers.t1
        self._pending_2xx = (data, destination, cseq)
        self._deadlines["2xx"] = now + t1
        self._intervals["2xx"] = t1
        self._deadlines["ack"] = now + self.core.config.timers.timeout

    def _on_reinvite(self, tx: object, request: SipRequest, now: float) -> None:
        assert isinstance(tx, ServerInviteTransaction) and self.dialog is not None
        if self.state is not C.CONFIRMED or "reinvite" in self._txs or self._pending_2xx:
            tx.send_response(make_response(request, 491), now)
            return
        try:
            sdp = description_in(request)
        except SipParseError as exc:
            tx.send_response(make_response(request, exc.status_hint), now)
            return
        self.dialog.update_target(request)
        headers = [("Contact", self.core.config.contact), ("Allow", ALLOW)]
        if self.local_sdp:
            headers.append(("Content-Type", "application/sdp"))
        response = make_response(request, 200, headers=tuple(headers), body=self.local_sdp or b"")
        tx.send_response(response, now)
        self._await_ack(response.to_bytes(), tx.destination, request.cseq.seq, now)
        if sdp is not None:
            self.remote_sdp = sdp
            self.core.emit(CallUpdated(self.call_id, sdp))

    def _invite_response(self, response: SipResponse, now: float) -> None:
        assert self._invite is not None
        status = response.status
        if status < 200:
            self._provisional = True
            if status == 100:
                if not self._trying_reported:
                    self._trying_reported = True
                    self.core.emit(CallTrying(self.call_id))
            else:
                if response.to.tag and self.dialog is None:
                    self.dialog = SipDialog.from_uac(self._invite, response)
                if self.state is C.CALLING:
                    self._goto(C.EARLY)
                try:
                    sdp = description_in(response)
                except SipParseError:
                    sdp = None
                self.core.emit(CallRinging(self.call_id, status, sdp))
            if self._cancel_requested and not self._cancel_sent:
                self._send_cancel(now)
            return
        if status < 300:
            self._invite_accepted(response, now)
            return
        self.dialog = None
        self._finish(self._unanswered_end(status, response.reason))

    def _invite_accepted(self, response: SipResponse, now: float) -> None:
        assert self._invite is not None
        self.dialog = SipDialog.from_uac(self._invite, response)
        self.dialog.confirmed = True
        self._send_ack(self.dialog, now)
        self._cancel_deadlines("no-answer", "cancel")
        if self.state is C.TERMINATING:  # hung up while it rang: the answer crossed the CANCEL
            self._send_bye(now)
            return
        try:
            sdp = description_in(response)
        except SipParseError as exc:
            self._report(CallFailed(self.call_id, exc.status_hint, f"bad SDP in answer: {exc}"))
            self._send_bye(now)
            return
        self.remote_sdp = sdp
        self._goto(C.CONFIRMED)
        self.core.emit(CallAnswered(self.call_id, sdp, response))

    def _send_ack(self, dialog: SipDialog, now: float) -> None:
        """ACK a 2xx to our INVITE (a new transaction; kept to answer retransmissions)."""
        assert self._invite is not None
        seq = self._invite.cseq.seq
        auth = tuple((n, v) for n, v in self._invite.headers if n in ("Authorization", "Proxy-Authorization"))
        ack = dialog.create_ack(seq, via=self.core.via(), headers=auth)
        self._acks[(seq, dialog.remote_tag)] = entry = (ack.to_bytes(), dialog.destination())
        self.core.send_datagram(*entry)

    def _reinvite_response(self, response: SipResponse, now: float) -> None:
        assert self.dialog is not None
        if response.status < 200:
            return
        if response.status >= 300:
            self.core.emit(CallUpdateFailed(self.call_id, response.status, response.reason))
            if response.status in (408, 481):
                self.hangup(now)
            return
        seq = response.cseq.seq
        ack = self.dialog.create_ack(seq, via=self.core.via())
        self._acks[(seq, self.dialog.remote_tag)] = entry = (ack.to_bytes(), self.dialog.destination())
        self.core.send_datagram(*entry)
        self.dialog.update_target(response)
        sdp = description_in(response)
        self.remote_sdp = sdp if sdp is not None else self.remote_sdp
        self.core.emit(CallUpdated(self.call_id, sdp))

    def _send_cancel(self, now: float) -> None:
        assert self._invite is not None
        self._cancel_sent = True
        self._start("cancel", make_cancel(self._invite), self.destination, now)
        self._deadlines["cancel"] = now + self.core.config.timers.timeout  # RFC 3261 9.1

    def _send_bye(self, now: float) -> None:
        assert self.dialog is not None
        if self.state is not C.TERMINATING:
            self._goto(C.TERMINATING)
        bye = self._with_auth(self.dialog.create_request("BYE", via=self.core.via()))
        self._start("bye", bye, self.dialog.destination(), now)

    # -- digest authentication (UAC) -----------------------------------------------------

    def _with_auth(self, request: SipRequest) -> SipRequest:
        return self._auth.authorize(request, self.core.random_hex(16))

    def _retry_with_auth(self, role: str, response: SipResponse, now: float) -> bool:
        """Answer a 401/407 by resending the request with credentials."""
        old = self._txs[role].request
        dialog = self.dialog if role != "invite" else None
        seq = (dialog.local_seq if dialog else old.cseq.seq) + 1
        request = self._auth.retry(old, response, seq=seq, via=self.core.via(),
                                   cnonce=self.core.random_hex(16))
        if request is None:
            return False
        del self._txs[role]
        if dialog:
            dialog.local_seq = seq
        else:  # a new INVITE: whatever early dialog the challenge came with is void
            self._invite, self.dialog = request, None
        self._start(role, request, self.dialog.destination() if self.dialog else self.destination, now)
        return True
