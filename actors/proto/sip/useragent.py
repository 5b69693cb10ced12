"""The sans-I/O SIP user agent: datagrams in, datagrams and call events out.

An I/O shell drives it with one UDP socket and one timer::

    ua = SipUserAgent(SipConfig(host="192.0.2.1", port=5060))
    call_id = ua.place_call("sip:bot@192.0.2.9", offer_sdp, now=clock())
    while True:
        for data, address in ua.datagrams_to_send():
            sock.sendto(data, address)
        while (event := ua.next_event()) is not None:
            ...                                     # CallAnswered, CallEnded, IncomingCall...
        wait for a datagram or until ua.get_timer()
        ua.receive_datagram(data, address, now=clock())   # or ua.handle_timer(now=clock())

The agent parses each datagram, matches it to a transaction (RFC 3261 17.1.3/17.2.3) or
hands it to the transaction-user core, which routes it to a :class:`SipCall` by Call-ID
and dialog tags.  It answers what needs no decision on its own: 100 Trying, OPTIONS, 481
for unknown dialogs, 405 for unsupported methods, 420 for unknown ``Require`` extensions,
401 when a verifier is configured and credentials are missing or wrong.

Malformed datagrams never raise: they are reported as :class:`MalformedMessage` and, when
the request was readable enough, answered with the parser's ``status_hint``.

Cost per datagram does not grow with the number of calls: the agent touches only the
transactions that changed (each tells it through its ``listener``) and the call the datagram
names, and keeps every deadline in one heap (entries are checked against the object's own
``get_timer()`` when they reach the top, so a moved or cancelled timer costs nothing).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import random

from .auth import VerifyResult
from .call import SipCall
from .config import ALLOW, SipConfig
from .errors import SipError, SipParseError, SipStateError
from .events import MalformedMessage, OptionsResult, SipEvent
from .message import SipRequest, SipResponse, make_response, parse_message
from .sdp import description_in
from .transaction import (ClientInviteTransaction, ClientNonInviteTransaction, ResponseReceived,
                          ServerInviteTransaction, ServerNonInviteTransaction,
                          TransactionTimeout, client_key, server_key)
from .values import MAGIC_COOKIE, Address, SipUri, Via

__all__ = ["SipUserAgent"]

_Transaction = (ClientInviteTransaction | ClientNonInviteTransaction | ServerInviteTransaction
                | ServerNonInviteTransaction)


class _OptionsPing:
    """Owner of an out-of-dialog OPTIONS transaction: reports its outcome once."""

    def __init__(self, ua: "SipUserAgent", call_id: str) -> None:
        self.ua, self.call_id = ua, call_id

    def on_response(self, tx: object, response: SipResponse, now: float) -> None:
        if response.status >= 200:
            self.ua.emit(OptionsResult(self.call_id, response.status, response))

    def on_timeout(self, tx: object, now: float) -> None:
        self.ua.emit(OptionsResult(self.call_id, 408, None))


class SipUserAgent:
    """A UDP SIP user agent (UAC and UAS) for any number of calls; no I/O, no clock."""

    def __init__(self, config: SipConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.SystemRandom()
        self._transactions: dict[tuple[str, ...], _Transaction] = {}
        self._calls: dict[str, SipCall] = {}
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: collections.deque[SipEvent] = collections.deque()
        # what changed since the last pump, by identity, in the order it changed
        self._dirty_tx: dict[int, _Transaction] = {}
        self._dirty_calls: dict[int, SipCall] = {}
        # (deadline, tie-break, transaction or call); stale entries are dropped at the top
        self._timers: list[tuple[float, int, _Transaction | SipCall]] = []
        self._timer_seq = itertools.count()

    # -- the I/O shell's side ------------------------------------------------------------

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        """Feed one received UDP datagram."""
        if not data.strip(b"\r\n\t "):
            return  # keep-alive (RFC 5626 4.4.1)
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self.emit(MalformedMessage(source, str(exc), exc.status_hint))
            return
        call = self._calls.get(message.call_id)
        if call is not None:  # every request or response of a call carries its Call-ID
            self._dirty_calls[id(call)] = call
        if isinstance(message, SipResponse):
            self._receive_response(message, now)
        else:
            self._receive_request(message, source, now)
        self._pump(now)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Everything to send now, in order, as ``(data, (host, port))``."""
        self._collect()
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> SipEvent | None:
        """The next call event, or ``None``."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called (``None``: no timer)."""
        timers = self._timers
        while timers:
            deadline, _, owner = timers[0]
            if owner.get_timer() == deadline:
                return deadline
            heapq.heappop(timers)  # moved, cancelled or gone: its current deadline has its own entry
        return None

    def handle_timer(self, now: float) -> None:
        """Run every transaction and call timer due at ``now`` (transactions first)."""
        due_tx: dict[int, _Transaction] = {}
        due_calls: dict[int, SipCall] = {}
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, owner = heapq.heappop(timers)
            if owner.get_timer() != deadline:
                continue
            if isinstance(owner, SipCall):
                due_calls[id(owner)] = owner
            else:
                due_tx[id(owner)] = owner
        for tx in due_tx.values():
            tx.handle_timer(now)
            self._dirty_tx[id(tx)] = tx  # re-arm what is left, even if firing changed nothing
        self._pump(now)
        for call in due_calls.values():
            if self._calls.get(call.call_id) is call:
                call.handle_timer(now)
                self._dirty_calls[id(call)] = call
        self._pump(now)

    # -- call control --------------------------------------------------------------------

    def place_call(self, target: str, sdp: bytes | None, now: float, *,
                   destination: Address | None = None,
                   headers: tuple[tuple[str, str], ...] = ()) -> str:
        """Send an INVITE to ``target`` (a SIP URI); returns the new call's Call-ID.

        ``destination`` defaults to the URI's host and port (5060); a ``target`` that is
        not a SIP URI then raises SipParseError.
        """
        if destination is None:
            destination = SipUri.parse(target).address()
        call_id = f"{self.random_hex(24)}@{self.config.host}"
        call = self._calls[call_id] = SipCall.outgoing(self, call_id, target, sdp, now, destination,
                                                       headers)
        self._dirty_calls[id(call)] = call
        self._pump(now)
        return call_id

    def ring(self, call_id: str, now: float, *, sdp: bytes | None = None) -> None:
        """Send 180 Ringing (183 with early-media SDP) for an incoming call."""
        self._call(call_id).ring(now, sdp)
        self._pump(now)

    def answer(self, call_id: str, sdp: bytes | None, now: float) -> None:
        """Accept an incoming call with our SDP (answer, or offer if the INVITE had none)."""
        self._call(call_id).answer(sdp, now)
        self._pump(now)

    def reject(self, call_id: str, now: float, status: int = 486, reason: str | None = None,
               headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Refuse an incoming call (486 Busy Here by default; ``headers`` go in the response)."""
        self._call(call_id).reject(status, now, reason, headers)
        self._pump(now)

    def hangup(self, call_id: str, now: float) -> None:
        """End a call: CANCEL, 603 or BYE as its state requires.  Unknown ids are ignored."""
        call = self._calls.get(call_id)
        if call is not None:
            self._dirty_calls[id(call)] = call
            call.hangup(now)
            self._pump(now)

    def reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        """Send a re-INVITE with a new offer on an established call."""
        self._call(call_id).reinvite(sdp, now)
        self._pump(now)

    def send_options(self, target: str, now: float, *, destination: Address | None = None) -> str:
        """Send an out-of-dialog OPTIONS (a ping); the result comes as OptionsResult."""
        if destination is None:
            destination = SipUri.parse(target).address()
        call_id = f"{self.random_hex(24)}@{self.config.host}"
        request = self.config.new_request("OPTIONS", target, via=self.via(), call_id=call_id,
                                          tag=self.new_tag(), headers=(("Accept", "application/sdp"),))
        self.start_client_transaction(request, destination, _OptionsPing(self, call_id), now)
        self._pump(now)
        return call_id

    def call(self, call_id: str) -> SipCall | None:
        """The call's state object (for inspection), if it is still known."""
        return self._calls.get(call_id)

    @property
    def call_ids(self) -> list[str]:
        return list(self._calls)

    # -- CallCore: what calls may ask of us ----------------------------------------------

    def random_hex(self, size: int) -> str:
        return f"{self._rng.getrandbits(4 * size):0{size}x}"

    def new_tag(self) -> str:
        return self.random_hex(16)

    def via(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"SIP/2.0/UDP {host}:{self.config.port};branch={MAGIC_COOKIE}{self.random_hex(20)};rport"

    def emit(self, event: object) -> None:
        self._events.append(event)  # type: ignore[arg-type]

    def send_datagram(self, data: bytes, destination: Address) -> None:
        self._collect()
        self._outbox.append((data, destination))

    def start_client_transaction(self, request: SipRequest, destination: Address, owner: object,
                                 now: float) -> ClientInviteTransaction | ClientNonInviteTransaction:
        cls = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        tx = cls.start(request, destination, now, self.config.timers)
        tx.owner = owner
        self._collect()
        self._register(tx)
        return tx

    # -- dispatch ------------------------------------------------------------------------

    def _call(self, call_id: str) -> SipCall:
        """The call an entry point acts on (marked changed)."""
        call = self._calls.get(call_id)
        if call is None:
            raise SipStateError(f"no call {call_id!r}")
        self._dirty_calls[id(call)] = call
        return call

    def _receive_response(self, response: SipResponse, now: float) -> None:
        cseq = response.cseq
        tx = self._transactions.get(client_key(response.via.branch, cseq.method))
        if isinstance(tx, (ClientInviteTransaction, ClientNonInviteTransaction)):
            tx.receive_response(response, now)
        elif cseq.method == "INVITE" and 200 <= response.status < 300:
            call = self._calls.get(response.call_id)
            if call is not None:
                call.on_stray_2xx(response, now)

    def _receive_request(self, request: SipRequest, source: Address, now: float) -> None:
        request = self._stamp_via(request, source)
        key = server_key(request)
        existing = self._transactions.get(key)
        if isinstance(existing, (ServerInviteTransaction, ServerNonInviteTransaction)):
            existing.receive_request(request, now)  # a retransmission, or ACK for an error
            return
        if request.method == "ACK":
            call = self._calls.get(request.call_id)
            if call is not None:
                try:
                    call.on_ack(request, now)
                except SipError as exc:  # e.g. a malformed SDP answer in the ACK
                    self.emit(MalformedMessage(source, str(exc), getattr(exc, "status_hint", 400)))
                    call.abort(now, getattr(exc, "status_hint", 400), str(exc))
            return
        if request.method == "INVITE":
            tx: ServerInviteTransaction | ServerNonInviteTransaction = ServerInviteTransaction.start(
                request, source, now, self.config.timers, send_trying=self.config.send_trying)
        else:
            tx = ServerNonInviteTransaction.start(request, source, now, self.config.timers)
        self._register(tx)
        try:
            self._dispatch_request(tx, request, now)
        except SipParseError as exc:
            self.emit(MalformedMessage(source, str(exc), exc.status_hint))
            call = self._calls.get(request.call_id)
            if call is not None and tx.owner is call:
                call.abort(now, exc.status_hint, str(exc))
            elif tx.state.value in ("trying", "proceeding"):
                tx.send_response(make_response(request, exc.status_hint), now)

    def _dispatch_request(self, tx: ServerInviteTransaction | ServerNonInviteTransaction,
                          request: SipRequest, now: float) -> None:
        method = request.method
        if method == "CANCEL":
            invite_tx = self._transactions.get(server_key(request)[:-1] + ("INVITE",))
            owner = getattr(invite_tx, "owner", None)
            tx.send_response(make_response(request, 200 if owner else 481), now)
            if isinstance(owner, SipCall):
                owner.on_cancel(now)
            return
        required = [r for r in request.headers.get_list("Require") if r]
        if required:
            tx.send_response(make_response(request, 420, headers=(
                ("Unsupported", ", ".join(required)),)), now)
            return
        call = self._calls.get(request.call_id)
        if method not in ("INVITE", "BYE"):
            self._answer_simple(tx, request, now)
        elif request.to.tag is not None:
            dialog = call.dialog if call is not None else None
            if call is not None and dialog is not None and dialog.matches(request, incoming_request=True):
                tx.owner = call
                call.on_request(tx, request, now)
            else:
                tx.send_response(make_response(request, 481), now)
        elif method == "INVITE":
            if call is not None:
                tx.send_response(make_response(request, 482), now)  # merged request
            elif self._authorized(tx, request, now):
                sdp = description_in(request)
                assert isinstance(tx, ServerInviteTransaction)
                new_call = SipCall.incoming(self, tx, request, sdp)
                tx.owner = new_call
                self._calls[request.call_id] = new_call
        else:  # BYE outside any dialog
            tx.send_response(make_response(request, 481), now)

    def _answer_simple(self, tx: ServerInviteTransaction | ServerNonInviteTransaction,
                       request: SipRequest, now: float) -> None:
        """OPTIONS (in or out of a dialog) gets our capabilities; other methods get 405."""
        if request.method == "OPTIONS":
            tx.send_response(make_response(request, 200, to_tag=self.new_tag(), headers=(
                ("Allow", ALLOW), ("Accept", "application/sdp"),
                ("Server", self.config.user_agent))), now)
        else:
            tx.send_response(make_response(request, 405, headers=(("Allow", ALLOW),)), now)

    def _authorized(self, tx: ServerInviteTransaction | ServerNonInviteTransaction,
                    request: SipRequest, now: float) -> bool:
        verifier = self.config.verifier
        if verifier is None:
            return True
        result = verifier.verify(request.headers.get("Authorization"), method=request.method, now=now)
        if result is VerifyResult.OK:
            return True
        challenge = verifier.challenge(now, stale=result is VerifyResult.STALE)
        tx.send_response(make_response(request, 401, to_tag=self.new_tag(), headers=(
            ("WWW-Authenticate", challenge),)), now)
        return False

    def _stamp_via(self, request: SipRequest, source: Address) -> SipRequest:
        """Add ``received``/``rport`` to the top Via (RFC 3261 18.2.1, RFC 3581)."""
        vias = request.headers.get_list("Via")
        top = Via.parse(vias[0])
        params: dict[str, str | None] = {}
        if top.host.strip("[]") != source[0]:
            params["received"] = source[0]
        if "rport" in top.params:
            params["rport"] = str(source[1])
        if not params:
            return request
        headers = request.headers.remove("Via")
        for value in reversed([str(top.with_params(**params)), *vias[1:]]):
            headers = headers.prepend("Via", value)
        return SipRequest(request.method, request.uri, headers, request.body)

    def _register(self, tx: _Transaction) -> None:
        self._transactions[tx.key] = tx
        tx.listener = self._touch
        self._dirty_tx[id(tx)] = tx

    def _touch(self, tx: _Transaction) -> None:
        self._dirty_tx[id(tx)] = tx

    def _arm(self, owner: _Transaction | SipCall) -> None:
        deadline = owner.get_timer()
        if deadline is not None:
            heapq.heappush(self._timers, (deadline, next(self._timer_seq), owner))

    def _collect(self) -> None:
        """Move changed transactions' output to the outbox (kept in order before a datagram a
        call sends itself)."""
        for tx in self._dirty_tx.values():
            out = tx.datagrams_to_send()
            if out:
                self._outbox.extend(out)

    def _pump(self, now: float) -> None:
        """Move the changed transactions' output to the outbox and their events to their
        owners; forget what ended; re-arm the timers of what changed."""
        touched: dict[int, _Transaction] = {}
        while self._dirty_tx:
            batch, self._dirty_tx = self._dirty_tx, {}
            touched.update(batch)
            for tx in batch.values():
                out = tx.datagrams_to_send()
                if out:
                    self._outbox.extend(out)
                while (event := tx.next_event()) is not None:
                    self._deliver(tx, event, now)
        calls, self._dirty_calls = self._dirty_calls, {}
        for tx in touched.values():
            owner = tx.owner
            if isinstance(owner, SipCall):
                calls[id(owner)] = owner
            if not tx.terminated:
                self._arm(tx)
            elif self._transactions.get(tx.key) is tx:
                del self._transactions[tx.key]
        ended = []
        for call in calls.values():
            if self._calls.get(call.call_id) is not call:
                continue
            if call.finished:
                ended.append(call)
            else:
                self._arm(call)
        if ended:  # a finished call is forgotten once no transaction of its own is left
            owners = {id(tx.owner) for tx in self._transactions.values()}
            for call in ended:
                if id(call) not in owners:
                    del self._calls[call.call_id]
        if len(self._timers) > 64 + 4 * (len(self._transactions) + len(self._calls)):
            self._rearm_all()

    def _rearm_all(self) -> None:
        """Rebuild the timer heap from what is live (stale entries pile up under the top when
        timers move often)."""
        self._timers = []
        for owner in (*self._transactions.values(), *self._calls.values()):
            self._arm(owner)

    def _deliver(self, tx: _Transaction, event: object, now: float) -> None:
        owner = tx.owner
        if owner is None or not hasattr(owner, "on_response"):
            return
        if isinstance(owner, SipCall):
            self._dirty_calls[id(owner)] = owner
        try:
            if isinstance(event, ResponseReceived):
                owner.on_response(tx, event.response, now)
            elif isinstance(event, TransactionTimeout):
                owner.on_timeout(tx, now)
        except SipError as exc:
            status = getattr(exc, "status_hint", 500)
            self.emit(MalformedMessage(tx.destination, str(exc), status))
            if isinstance(owner, SipCall):
                owner.abort(now, status, str(exc))
