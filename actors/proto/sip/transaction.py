"""SIP transactions over UDP (RFC 3261 sec 17, with the RFC 6026 "Accepted" state).

Four sans-I/O state machines, one per transaction kind::

    ClientInviteTransaction      Calling -> Proceeding -> Completed | Accepted -> Terminated
                                 timers A (retransmit), B (timeout), D (absorb), M (accept 2xx)
    ClientNonInviteTransaction   Trying -> Proceeding -> Completed -> Terminated
                                 timers E (retransmit, capped at T2), F (timeout), K (absorb)
    ServerInviteTransaction      Proceeding -> Completed -> Confirmed | Accepted -> Terminated
                                 100 Trying at once; timers G (resend final), H (no ACK),
                                 I (absorb ACKs), L (accept)
    ServerNonInviteTransaction   Trying -> Proceeding -> Completed -> Terminated; timer J

Time is an input: every entry point takes ``now`` and the owner asks ``get_timer()`` for
the next deadline, then calls ``handle_timer(now)`` when it is reached (the aioquic
pattern).  Retransmissions are scheduled from the previous *deadline*, not from the time
``handle_timer`` happened to run, so an INVITE is resent at exactly 0.5, 1.5, 3.5, 7.5,
15.5 and 31.5 s and times out at 64*T1 = 32 s.

Output is pulled: ``datagrams_to_send()`` returns ``(bytes, address)`` pairs and
``next_event()`` the events for the transaction user (``ResponseReceived``,
``TransactionTimeout``, ``TransactionTerminated``).  Transitions are checked against a
table, as in h11; an illegal local action raises :class:`SipStateError` and changes
nothing.
"""

from __future__ import annotations

import collections
import enum
from typing import Callable, ClassVar

import attrs

from .errors import SipStateError
from .headers import Headers
from .message import SipRequest, SipResponse, make_response
from .values import MAGIC_COOKIE, Address

__all__ = [
    "TimerSettings",
    "TxState",
    "ResponseReceived",
    "TransactionTimeout",
    "TransactionTerminated",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "client_key",
    "server_key",
    "make_cancel",
]


@attrs.frozen
class TimerSettings:
    """RFC 3261 timer base values (seconds); ``timeout`` is 64*T1 (B, F, H, J, L, M)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0

    @property
    def timeout(self) -> float:
        return 64 * self.t1


class TxState(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


@attrs.frozen
class ResponseReceived:
    response: SipResponse


@attrs.frozen
class TransactionTimeout:
    """The transaction gave up: ``timer`` is "B", "F" (no final response) or "H" (no ACK)."""

    timer: str


@attrs.frozen
class TransactionTerminated:
    pass


TxEvent = ResponseReceived | TransactionTimeout | TransactionTerminated
S = TxState


def client_key(branch: str | None, method: str) -> tuple[str, ...]:
    """Matches a response to a client transaction (RFC 3261 17.1.3)."""
    return ("client", branch or "", method)


def server_key(request: SipRequest) -> tuple[str, ...]:
    """Matches a request to a server transaction (RFC 3261 17.2.3); ACK maps to INVITE."""
    via = request.via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return ("server", branch, via.sent_by.lower(), method)
    # RFC 2543 peers: no usable branch, fall back to the dialog identifiers.
    return ("server-2543", request.call_id, request.from_.tag or "", str(request.cseq.seq),
            via.sent_by.lower(), method)


def _same_transaction_request(invite: SipRequest, method: str, to: str) -> SipRequest:
    """ACK (for a non-2xx) or CANCEL for ``invite``: its Request-URI, top Via (so the same
    branch), From, Call-ID, CSeq number and Route headers."""
    items = [("Via", str(invite.via)), ("Max-Forwards", "70"), ("From", invite.headers.get("From") or ""),
             ("To", to), ("Call-ID", invite.call_id), ("CSeq", f"{invite.cseq.seq} {method}")]
    items += [("Route", r) for r in invite.headers.get_all("Route")]
    return SipRequest(method, invite.uri, Headers.of(items))


def make_cancel(invite: SipRequest) -> SipRequest:
    """The CANCEL for a pending INVITE (RFC 3261 9.1); it is matched to the INVITE's
    server transaction by the shared branch."""
    return _same_transaction_request(invite, "CANCEL", invite.headers.get("To") or "")


@attrs.define(eq=False)
class _Transaction:
    """Shared machinery: timers, outbox, event queue, checked transitions."""

    TRANSITIONS: ClassVar[dict[TxState, frozenset[TxState]]] = {}

    request: SipRequest
    destination: Address
    timers: TimerSettings
    state: TxState
    owner: object = None
    #: called with the transaction whenever it may have new output, events or deadlines
    #: (the user agent's way to touch only the transactions that changed)
    listener: Callable[["_Transaction"], None] | None = None
    _deadlines: dict[str, float] = attrs.field(factory=dict)
    _intervals: dict[str, float] = attrs.field(factory=dict)
    _outbox: list[tuple[bytes, Address]] = attrs.field(factory=list)
    _events: collections.deque[TxEvent] = attrs.field(factory=collections.deque)

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    def get_timer(self) -> float | None:
        """The earliest pending deadline, or ``None``."""
        return min(self._deadlines.values(), default=None)

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline is at or before ``now``, earliest first."""
        while self.state is not S.TERMINATED:
            due = [(t, name) for name, t in self._deadlines.items() if t <= now]
            if not due:
                return
            deadline, name = min(due)
            del self._deadlines[name]
            self._fire(name, deadline)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._outbox = self._outbox, []
        return out

    def terminate(self) -> None:
        """Destroy the transaction now (e.g. an INVITE whose CANCEL got no answer within
        64*T1, RFC 3261 9.1).  Nothing is sent; TransactionTerminated is reported."""
        if self.state is not S.TERMINATED:
            self._goto(S.TERMINATED)

    def next_event(self) -> TxEvent | None:
        return self._events.popleft() if self._events else None

    def _fire(self, name: str, deadline: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener(self)

    def _emit(self, event: TxEvent) -> None:
        self._events.append(event)
        self._changed()

    def _send(self, data: bytes) -> None:
        self._outbox.append((data, self.destination))
        self._changed()

    def _schedule(self, name: str, at: float, interval: float | None = None) -> None:
        self._deadlines[name] = at
        if interval is not None:
            self._intervals[name] = interval
        self._changed()

    def _cancel(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)
        self._changed()

    def _goto(self, state: TxState) -> None:
        if state not in self.TRANSITIONS.get(self.state, frozenset()):
            raise SipStateError(f"{type(self).__name__}: illegal transition "
                                f"{self.state.value} -> {state.value}")
        self.state = state
        if state is S.TERMINATED:
            self._deadlines.clear()
            self._emit(TransactionTerminated())

    def _retransmit(self, name: str, deadline: float, data: bytes, cap: float | None) -> None:
        self._send(data)
        interval = self._intervals[name] * 2
        if cap is not None:
            interval = min(interval, cap)
        self._schedule(name, deadline + interval, interval)


@attrs.define(eq=False)
class ClientInviteTransaction(_Transaction):
    """Sends an INVITE and retransmits it until a response; ACKs non-2xx finals itself."""

    TRANSITIONS: ClassVar[dict[TxState, frozenset[TxState]]] = {
        S.CALLING: frozenset({S.PROCEEDING, S.COMPLETED, S.ACCEPTED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.ACCEPTED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
        S.ACCEPTED: frozenset({S.TERMINATED}),
    }
    _request_bytes: bytes = b""
    _ack_bytes: bytes | None = None

    @classmethod
    def start(cls, request: SipRequest, destination: Address, now: float,
              timers: TimerSettings = TimerSettings()) -> "ClientInviteTransaction":
        tx = cls(request, destination, timers, S.CALLING)
        tx._request_bytes = request.to_bytes()
        tx._send(tx._request_bytes)
        tx._schedule("A", now + timers.t1, timers.t1)
        tx._schedule("B", now + timers.timeout)
        return tx

    @property
    def key(self) -> tuple[str, ...]:
        return client_key(self.request.via.branch, "INVITE")

    def receive_response(self, response: SipResponse, now: float) -> None:
        code = response.status
        if self.state in (S.CALLING, S.PROCEEDING):
            self._cancel("A", "B")
            if code < 200:
                if self.state is S.CALLING:
                    self._goto(S.PROCEEDING)
            elif code < 300:
                self._goto(S.ACCEPTED)
                self._schedule("M", now + self.timers.timeout)
            else:
                self._goto(S.COMPLETED)
                self._ack_bytes = self._ack_for(response).to_bytes()
                self._send(self._ack_bytes)
                self._schedule("D", now + self.timers.timer_d)
            self._emit(ResponseReceived(response))
        elif self.state is S.COMPLETED and code >= 300 and self._ack_bytes is not None:
            self._send(self._ack_bytes)
        elif self.state is S.ACCEPTED and 200 <= code < 300:
            self._emit(ResponseReceived(response))

    def _ack_for(self, response: SipResponse) -> SipRequest:
        """The ACK of RFC 3261 17.1.1.3 (same branch, To from the response)."""
        return _same_transaction_request(self.request, "ACK", response.headers.get("To") or "")

    def _fire(self, name: str, deadline: float) -> None:
        if name == "A" and self.state is S.CALLING:
            self._retransmit("A", deadline, self._request_bytes, cap=None)
        elif name == "B":
            self._emit(TransactionTimeout("B"))
            self._goto(S.TERMINATED)
        elif name in ("D", "M"):
            self._goto(S.TERMINATED)


@attrs.define(eq=False)
class ClientNonInviteTransaction(_Transaction):
    """Sends BYE, CANCEL, OPTIONS...; retransmits (capped at T2) until a final response."""

    TRANSITIONS: ClassVar[dict[TxState, frozenset[TxState]]] = {
        S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
    }
    _request_bytes: bytes = b""

    @classmethod
    def start(cls, request: SipRequest, destination: Address, now: float,
              timers: TimerSettings = TimerSettings()) -> "ClientNonInviteTransaction":
        tx = cls(request, destination, timers, S.TRYING)
        tx._request_bytes = request.to_bytes()
        tx._send(tx._request_bytes)
        tx._schedule("E", now + timers.t1, timers.t1)
        tx._schedule("F", now + timers.timeout)
        return tx

    @property
    def key(self) -> tuple[str, ...]:
        return client_key(self.request.via.branch, self.request.method)

    def receive_response(self, response: SipResponse, now: float) -> None:
        if self.state not in (S.TRYING, S.PROCEEDING):
            return  # Completed: retransmitted finals are absorbed
        if response.status < 200:
            if self.state is S.TRYING:
                self._goto(S.PROCEEDING)
        else:
            self._cancel("E", "F")
            self._goto(S.COMPLETED)
            self._schedule("K", now + self.timers.t4)
        self._emit(ResponseReceived(response))

    def _fire(self, name: str, deadline: float) -> None:
        if name == "E" and self.state is S.TRYING:
            self._retransmit("E", deadline, self._request_bytes, cap=self.timers.t2)
        elif name == "E" and self.state is S.PROCEEDING:
            self._send(self._request_bytes)
            self._schedule("E", deadline + self.timers.t2, self.timers.t2)
        elif name == "F":
            self._emit(TransactionTimeout("F"))
            self._goto(S.TERMINATED)
        elif name == "K":
            self._goto(S.TERMINATED)


@attrs.define(eq=False)
class _ServerTransaction(_Transaction):
    _last_response: bytes | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return server_key(self.request)


@attrs.define(eq=False)
class ServerInviteTransaction(_ServerTransaction):
    """Answers an INVITE: 100 Trying at once, retransmits error finals until ACK."""

    TRANSITIONS: ClassVar[dict[TxState, frozenset[TxState]]] = {
        S.PROCEEDING: frozenset({S.COMPLETED, S.ACCEPTED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.CONFIRMED, S.TERMINATED}),
        S.CONFIRMED: frozenset({S.TERMINATED}),
        S.ACCEPTED: frozenset({S.TERMINATED}),
    }

    @classmethod
    def start(cls, request: SipRequest, source: Address, now: float,
              timers: TimerSettings = TimerSettings(), *, send_trying: bool = True,
              ) -> "ServerInviteTransaction":
        tx = cls(request, source, timers, S.PROCEEDING)
        if send_trying:
            tx._last_response = make_response(request, 100).to_bytes()
            tx._send(tx._last_response)
        return tx

    def receive_request(self, request: SipRequest, now: float) -> None:
        """A retransmitted INVITE, or the ACK for a non-2xx final response."""
        if request.method == "ACK":
            if self.state is S.COMPLETED:
                self._cancel("G", "H")
                self._goto(S.CONFIRMED)
                self._schedule("I", now + self.timers.t4)
        elif self.state in (S.PROCEEDING, S.COMPLETED) and self._last_response is not None:
            self._send(self._last_response)

    def send_response(self, response: SipResponse, now: float) -> None:
        code = response.status
        if self.state is S.ACCEPTED and 200 <= code < 300:
            self._send(response.to_bytes())  # the TU retransmitting its 2xx
            return
        if self.state is not S.PROCEEDING:
            raise SipStateError(f"cannot send {code} in state {self.state.value}")
        data = response.to_bytes()
        if code >= 300:
            self._goto(S.COMPLETED)
            self._schedule("G", now + self.timers.t1, self.timers.t1)
            self._schedule("H", now + self.timers.timeout)
        elif code >= 200:
            self._goto(S.ACCEPTED)
            self._schedule("L", now + self.timers.timeout)
        self._last_response = data
        self._send(data)

    def _fire(self, name: str, deadline: float) -> None:
        if name == "G" and self.state is S.COMPLETED and self._last_response is not None:
            self._retransmit("G", deadline, self._last_response, cap=self.timers.t2)
        elif name == "H":
            self._emit(TransactionTimeout("H"))
            self._goto(S.TERMINATED)
        elif name in ("I", "L"):
            self._goto(S.TERMINATED)


@attrs.define(eq=False)
class ServerNonInviteTransaction(_ServerTransaction):
    """Answers BYE, CANCEL, OPTIONS...; resends the last response on retransmissions."""

    TRANSITIONS: ClassVar[dict[TxState, frozenset[TxState]]] = {
        S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
    }

    @classmethod
    def start(cls, request: SipRequest, source: Address, now: float,
              timers: TimerSettings = TimerSettings()) -> "ServerNonInviteTransaction":
        return cls(request, source, timers, S.TRYING)

    def receive_request(self, request: SipRequest, now: float) -> None:
        if self.state is not S.TRYING and self._last_response is not None:
            self._send(self._last_response)

    def send_response(self, response: SipResponse, now: float) -> None:
        if self.state not in (S.TRYING, S.PROCEEDING):
            raise SipStateError(f"cannot send {response.status} in state {self.state.value}")
        data = response.to_bytes()
        if response.status < 200:
            if self.state is S.TRYING:
                self._goto(S.PROCEEDING)
        else:
            self._goto(S.COMPLETED)
            self._schedule("J", now + self.timers.timeout)
        self._last_response = data
        self._send(data)

    def _fire(self, name: str, deadline: float) -> None:
        if name == "J":
            self._goto(S.TERMINATED)
