"""What the server keeps of each connection or call: :class:`ConnectionRecord`, and the book
that bounds them, :class:`RecordBook`.

One record per WebSocket connection, sideband, WebRTC call or SIP call, opened by the server's
record factory (``EmbeddedServer.open_record``) and kept, closed ones included, for tests and
reports (``server.connections``).

Bounded by bytes, not counts: a live record holds its model session; when it closes
(``EmbeddedServer.close_record``) it keeps only a :class:`ClosedSession` (the session object,
the client events received in order, with audio payloads replaced by their length and runs of
appends collapsed into one entry, the conversation items and the responses, their text
included), measured once as JSON text. Closed records together stay under
``record_budget_bytes`` (default 16 MiB): the oldest are dropped first and counted
(``stats.records_dropped``, ``stats.record_bytes_dropped``). ``record_limit`` still caps their
number.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
import trio

from standin.model.dialect import ModelSession

__all__ = ["ClosedSession", "ConnectionRecord", "RecordBook", "DEFAULT_RECORD_BUDGET"]

#: default bound of the closed records' retained bytes (measured as JSON text)
DEFAULT_RECORD_BUDGET = 16 * 2**20


@attrs.frozen
class ClosedSession:
    """What a closed record keeps of its model session (the same attributes tests read)."""

    session: dict[str, Any]
    transport: str
    received: list[dict[str, Any]]
    items: list[dict[str, Any]]
    responses: list[dict[str, Any]]

    @classmethod
    def of(cls, session: Any) -> ClosedSession:
        return cls(dict(session.session), session.transport, list(session.received),
                   [dict(i) for i in session.items], list(session.responses))

    def size(self) -> int:
        """Bytes retained, measured as JSON text (an estimate of the heap it holds)."""
        return len(json.dumps([self.session, self.received, self.items, self.responses],
                              separators=(",", ":"), default=str))


@attrs.define(eq=False)
class ConnectionRecord:
    """What tests (and reports) can see of one WebSocket connection."""

    id: str
    index: int
    model: str | None
    call_id: str | None
    auth_kind: str | None  # "api_key" | "client_secret" | None (refused)
    subprotocol: str | None
    connected_at: float  # trio clock
    session: ModelSession | ClosedSession | None = None
    # Set when the server closes (1006 = it aborted the TCP connection). When the client closes,
    # hypercorn reports 1006 whatever the client sent: see ``closed_by``.
    close_code: int | None = None
    closed_by: str | None = None  # "server" | "client"
    events_sent: int = 0
    closed: trio.Event = attrs.field(factory=trio.Event, repr=False)
    #: "websocket", "sideband" (``?call_id=``) or "webrtc" (a call; ``call_id`` is its id)
    transport: str = "websocket"
    end_reason: str = ""  # WebRTC calls: why the call ended
    #: bytes retained once closed (0 while live)
    retained_bytes: int = 0
    #: a live WebSocket connection: drop it now, as the plan's drops do (``drop_connections``)
    drop_now: Callable[[], None] | None = attrs.field(default=None, repr=False)

    @property
    def received(self) -> list[dict[str, Any]]:
        """Client events received (append audio replaced by its length), oldest first."""
        return self.session.received if self.session else []

    @property
    def items(self) -> list[dict[str, Any]]:
        """The conversation items, in order."""
        return self.session.items if self.session else []

    @property
    def responses(self) -> list[dict[str, Any]]:
        return self.session.responses if self.session else []


@attrs.define(eq=False)
class RecordBook:
    """Opens records, and keeps the closed ones under a byte budget and a count (oldest first)."""

    records: list[ConnectionRecord]
    budget_bytes: int = DEFAULT_RECORD_BUDGET
    limit: int = 1000
    retained_bytes: int = 0
    dropped: int = 0
    dropped_bytes: int = 0
    _closed: deque[ConnectionRecord] = attrs.field(factory=deque)

    def add(self, record: ConnectionRecord) -> None:
        self.records.append(record)

    def close(self, record: ConnectionRecord) -> None:
        """The connection ended: compact its record, then enforce the bounds."""
        if record.closed.is_set():
            return
        record.drop_now = None
        if record.session is not None and not isinstance(record.session, ClosedSession):
            record.session = ClosedSession.of(record.session)
        record.retained_bytes = record.session.size() if record.session is not None else 64
        record.closed.set()
        self.retained_bytes += record.retained_bytes
        self._closed.append(record)
        while self._closed and (self.retained_bytes > self.budget_bytes
                                or len(self._closed) > self.limit):
            old = self._closed.popleft()
            self.retained_bytes -= old.retained_bytes
            self.dropped += 1
            self.dropped_bytes += old.retained_bytes
            try:
                self.records.remove(old)
            except ValueError:  # already gone (a test cleared the list)
                pass
