"""What the server keeps of each connection or call after it opened: :class:`ConnectionRecord`.

One record per WebSocket connection, sideband, WebRTC call or SIP call, created by the server's
record factory (``EmbeddedServer.open_record``) and kept, closed ones included, for tests and
reports (``server.connections``).
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from standin.model.dialect import ModelSession

__all__ = ["ConnectionRecord"]


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
    session: ModelSession | None = None
    # Set when the server closes (1006 = it aborted the TCP connection). When the client closes,
    # hypercorn reports 1006 whatever the client sent: see ``closed_by``.
    close_code: int | None = None
    closed_by: str | None = None  # "server" | "client"
    events_sent: int = 0
    closed: trio.Event = attrs.field(factory=trio.Event, repr=False)
    #: "websocket", "sideband" (``?call_id=``) or "webrtc" (a call; ``call_id`` is its id)
    transport: str = "websocket"
    end_reason: str = ""  # WebRTC calls: why the call ended

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
