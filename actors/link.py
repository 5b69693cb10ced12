"""SessionLink: what one session keeps across its successive connections.

A session outlives its connections.  The supervisor creates one ``SessionLink`` per session
and hands it to every actor incarnation (each connection attempt).  The link holds:

* the sans-I/O :class:`~actors.proto.client.ClientCore` (outbound queue, acknowledgements,
  conversation mirror): what makes a reconnect lose nothing;
* the :class:`~actors.events.EventStamper` (per-session sequence numbers, so a gap in a
  subscriber's stream is always a loss) and the publish callback into the router;
* the :class:`~actors.events.StateMachine`: every change is published as a ``state`` event;
* two wake-ups: "there is something to write" for the actor's writer, and "the control
  queue has room" for senders waiting on back-pressure.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs
import trio

from actors.events import (
    ConnectionEvent,
    ConnectionState,
    EventKind,
    EventStamper,
    StateMachine,
    Transport,
)
from actors.proto.client import ClientCore
from actors.proto.errors import QueueFull

__all__ = ["SessionLink"]


@attrs.define(eq=False)
class SessionLink:
    session_id: str
    transport: Transport
    core: ClientCore
    publish: Callable[[ConnectionEvent], None]
    stamper: EventStamper = attrs.field()
    machine: StateMachine = attrs.field()
    _outbound: trio.Event = attrs.field(factory=trio.Event, init=False)
    _space: trio.Event = attrs.field(factory=trio.Event, init=False)
    #: set when the session should close cleanly (the actor closes with 1000 and returns)
    stop_requested: trio.Event = attrs.field(factory=trio.Event, init=False)
    #: set to drop the current connection abruptly (chaos); replaced for each connection
    abort_requested: trio.Event = attrs.field(factory=trio.Event, init=False)
    _restore_seen: Any = attrs.field(default=None, init=False)
    #: set when a Live answer is open (its end is found by output quiet: actors.inbound)
    answer_opened: trio.Event = attrs.field(factory=trio.Event, init=False)

    @stamper.default
    def _default_stamper(self) -> EventStamper:
        return EventStamper(self.session_id, self.transport, trio.current_time)

    @machine.default
    def _default_machine(self) -> StateMachine:
        return StateMachine(self.session_id)

    # -- events ---------------------------------------------------------------------------

    def emit(self, kind: EventKind, payload: Any) -> ConnectionEvent:
        event = self.stamper.make(kind, payload)
        self.publish(event)
        return event

    @property
    def state(self) -> ConnectionState:
        return self.machine.state

    def set_state(self, target: ConnectionState, reason: str = "") -> ConnectionEvent:
        """Advance the state machine (raises IllegalTransition, state unchanged) and publish."""
        return self.emit(EventKind.STATE, self.machine.advance(target, reason))

    # -- outbound -------------------------------------------------------------------------

    def send_nowait(self, event: dict[str, Any]) -> None:
        """Queue a client event; raises ``QueueFull`` if the control queue is full."""
        for notice in self.core.submit(event):
            self.emit(EventKind.DROPPED, notice)
        self._outbound.set()

    async def send(self, event: dict[str, Any]) -> None:
        """Queue a client event, waiting while the control queue is full."""
        while True:
            try:
                self.send_nowait(event)
                return
            except QueueFull:
                if self._space.is_set():
                    self._space = trio.Event()
                await self._space.wait()

    def abort_connection(self) -> None:
        """Drop the current connection without a close handshake (fault injection).

        Only a connected session has a connection to drop; otherwise this does nothing.
        The request holds until the actor's watcher takes it, so calling this right after
        the session became connected is not lost."""
        if self.machine.state is ConnectionState.CONNECTED:
            self.abort_requested.set()

    def recycle_deadline(self, recycle_after: float | None, margin: float) -> float:
        """When (trio clock) the current connection should be closed and replaced: after
        ``recycle_after`` seconds, and ``margin`` seconds before the server's ``expires_at``."""
        now = trio.current_time()
        deadline = math.inf
        if recycle_after is not None:
            deadline = now + recycle_after
        expires_at = self.core.expires_at
        if expires_at:
            remaining = float(expires_at) - self.stamper.wall() - margin
            deadline = min(deadline, now + max(remaining, 0.0))
        return deadline

    def wake_writer(self) -> None:
        self._outbound.set()

    async def wait_outbound(self) -> None:
        await self._outbound.wait()
        self._outbound = trio.Event()

    def take_outgoing(self) -> list[dict[str, Any]]:
        """Events to write now; wakes senders waiting for queue space."""
        events = self.core.outgoing()
        if events:
            self._space.set()
            restore = self.core.last_restore
            if restore is not self._restore_seen:  # a connection's restore was just written
                self._restore_seen = restore
                if restore is not None and restore.replayed_turns:
                    self.emit(EventKind.INFO, {"event": "turns.replayed",
                                               "turns": restore.replayed_turns})
                if restore is not None and restore.skipped_items and self.core.edge is not None:
                    # Live restores by seeding a new session: what did not fit is reported
                    self.emit(EventKind.DROPPED, {"count": restore.skipped_items,
                                                  "category": "restore",
                                                  "reason": "not_restorable_on_live"})
        return events
