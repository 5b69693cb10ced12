"""The actor contract: one event stream and one state machine for every transport.

Every actor (WebSocket, WebRTC, SIP) reports what happens to its connection as
:class:`ConnectionEvent` values.  State changes are events too (kind ``state``), so a
subscriber that reads the stream sees the whole life of a session in order.

The state machine is data (``TRANSITIONS``), in the manner of h11's ``_state.py``: an
illegal step raises :class:`IllegalTransition` naming the states and leaves the
machine unchanged.

Nothing here performs I/O or reads a clock: times are parameters, supplied by the
I/O shell (``trio.current_time()`` for the monotonic clock so that tests can run on a
``MockClock``).
"""

from __future__ import annotations

import enum
import time
from typing import Any, Callable

import attrs
import msgpack

__all__ = [
    "Transport",
    "EventKind",
    "ConnectionState",
    "TRANSITIONS",
    "IllegalTransition",
    "ConnectionEvent",
    "StateMachine",
    "EventStamper",
    "encode_event",
    "decode_event",
]


class Transport(enum.StrEnum):
    WEBSOCKET = "websocket"
    WEBRTC = "webrtc"
    SIP = "sip"


class EventKind(enum.StrEnum):
    """What a :class:`ConnectionEvent` carries.

    ``state``          payload ``{"from", "to", "reason"}``
    ``server``         a realtime server event (the decoded JSON dict)
    ``sent``           a client event that was written to the transport (the dict)
    ``protocol_error`` malformed or unexpected input from the peer; the session lives on
                       (payload ``{"code", "message", "detail"?}``)
    ``dropped``        outbound items dropped by policy, payload ``{"count", "category", "reason"}``
    ``audio``          decoded audio, payload ``bytes`` (PCM16 mono 24 kHz)
    ``info``           anything else worth telling (restore summary, key refresh, …)
    """

    STATE = "state"
    SERVER = "server"
    SENT = "sent"
    PROTOCOL_ERROR = "protocol_error"
    DROPPED = "dropped"
    AUDIO = "audio"
    INFO = "info"


class ConnectionState(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ERROR = "error"
    CLOSED = "closed"


S = ConnectionState

#: Legal transitions.  ``closed`` is terminal; ``error`` may be left only by a supervised
#: restart (``reconnecting``) or a final ``closed``.
TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    S.CONNECTING: frozenset({S.CONNECTED, S.RECONNECTING, S.ERROR, S.CLOSED}),
    S.CONNECTED: frozenset({S.RECONNECTING, S.ERROR, S.CLOSED}),
    S.RECONNECTING: frozenset({S.CONNECTED, S.ERROR, S.CLOSED}),
    S.ERROR: frozenset({S.RECONNECTING, S.CLOSED}),
    S.CLOSED: frozenset(),
}


class IllegalTransition(Exception):
    """A state change the transition table does not allow; the state is unchanged."""

    def __init__(self, session_id: str, current: ConnectionState, target: ConnectionState):
        self.session_id = session_id
        self.current = current
        self.target = target
        super().__init__(
            f"session {session_id}: illegal transition {current.value} -> {target.value}"
        )


@attrs.frozen(slots=True)
class ConnectionEvent:
    session_id: str
    transport: Transport
    kind: EventKind
    payload: Any
    seq: int
    mono: float
    wall: float

    @property
    def type(self) -> str | None:
        """The realtime event type for ``server``/``sent`` events, else ``None``."""
        if isinstance(self.payload, dict):
            t = self.payload.get("type")
            return t if isinstance(t, str) else None
        return None

    def to_record(self) -> list[Any]:
        return [
            self.session_id,
            self.transport.value,
            self.kind.value,
            self.payload,
            self.seq,
            self.mono,
            self.wall,
        ]

    @classmethod
    def from_record(cls, record: list[Any]) -> ConnectionEvent:
        sid, transport, kind, payload, seq, mono, wall = record
        return cls(sid, Transport(transport), EventKind(kind), payload, seq, mono, wall)


def encode_event(event: ConnectionEvent) -> bytes:
    """msgpack bytes for one event (payload bytes stay binary)."""
    return msgpack.packb(event.to_record(), use_bin_type=True)


def decode_event(data: bytes) -> ConnectionEvent:
    return ConnectionEvent.from_record(msgpack.unpackb(data, raw=False, strict_map_key=False))


@attrs.define
class EventStamper:
    """Creates the events of one session: numbers them and stamps both clocks.

    It belongs to the session, not to one connection, so sequence numbers keep growing
    across reconnects and a gap is always a loss.
    """

    session_id: str
    transport: Transport
    monotonic: Callable[[], float]
    wall: Callable[[], float] = time.time
    seq: int = 0

    def make(self, kind: EventKind, payload: Any) -> ConnectionEvent:
        self.seq += 1
        return ConnectionEvent(
            self.session_id, self.transport, kind, payload, self.seq, self.monotonic(), self.wall()
        )


@attrs.define
class StateMachine:
    """The connection state of one session.  ``advance`` returns the state event payload."""

    session_id: str
    state: ConnectionState = ConnectionState.CONNECTING

    def can(self, target: ConnectionState) -> bool:
        return target in TRANSITIONS[self.state]

    def advance(self, target: ConnectionState, reason: str = "") -> dict[str, str]:
        if target not in TRANSITIONS[self.state]:
            raise IllegalTransition(self.session_id, self.state, target)
        previous, self.state = self.state, target
        return {"from": previous.value, "to": target.value, "reason": reason}
