"""SessionLink: what one session keeps across its successive connections.

A session outlives its connections.  The supervisor creates one ``SessionLink`` per session
and hands it to every actor incarnation (each connection attempt).  The link holds:

* the sans-I/O :class:`~actors.proto.client.ClientCore` (outbound queue, acknowledgements,
  conversation mirror): what makes a reconnect lose nothing;
* the :class:`~actors.events.EventStamper` (per-session sequence numbers, so a gap in a
  subscriber's stream is always a loss) and the publish callback into the router;
* the :class:`~actors.events.StateMachine`: every change is published as a ``state`` event;
* two wake-ups: "there is something to write" for the actor's writer, and "the control
  queue has room" for senders waiting on back-pressure;
* the current connection's direct writer, when its actor offers one: :meth:`SessionLink.send_now`
  and :meth:`SessionLink.send_audio_now` (the fleet's audio clock) write from the caller's task
  instead of waking the writer.
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

__all__ = ["QUIET_S", "SessionLink", "run_clock_now"]

_APPEND = "input_audio_buffer.append"
#: an append sent after this long without a direct write is written at once (see send_nowait)
QUIET_S = 0.002


def run_clock_now() -> Callable[[], float]:
    """What ``trio.current_time`` reads, one call instead of three: the current run's clock's
    ``current_time`` (outside a run, ``trio.current_time`` itself). A link stamps every event
    it publishes and the audio clock times every frame with it."""
    try:
        return trio.lowlevel.current_clock().current_time
    except RuntimeError:
        return trio.current_time


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
    #: the current connection's direct writer (see :meth:`attach_writer`); None: none
    _direct_writer: Callable[[dict[str, Any] | None], None] | None = attrs.field(default=None, init=False)
    #: and its writer of one stamped append (the audio clock's frame); None: the direct writer
    _direct_append: Callable[[dict[str, Any]], None] | None = attrs.field(default=None, init=False)
    #: when :meth:`send_nowait` last wrote an append directly (trio clock)
    _last_direct: float = attrs.field(default=-math.inf, init=False)

    @stamper.default
    def _default_stamper(self) -> EventStamper:
        return EventStamper(self.session_id, self.transport, run_clock_now())

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
        """Queue a client event; raises ``QueueFull`` if the control queue is full.

        The writer task writes what was queued at its next wake-up, in one write. An audio
        append that finds the connection quiet (nothing queued, nothing written directly in
        the last :data:`QUIET_S`) is written at once instead, from the caller's task: a
        sender pacing its own frames costs one wake-up per frame, not two, while a burst of
        sends still goes out together (its first frame at once, the rest in the writer's
        one write)."""
        writer = self._direct_writer
        if writer is not None and event.get("type") == _APPEND:
            now = self.stamper.monotonic()
            if now - self._last_direct >= QUIET_S:
                ready = self.core.write_audio_now(event)
                if ready is not None:
                    self._last_direct = now
                    writer(ready)
                    return
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

    def send_now(self, event: dict[str, Any]) -> None:
        """Queue a client event and write what is queued at once, from the calling task
        (:meth:`write_now`): one write and no task switch. Raises ``QueueFull`` like
        :meth:`send_nowait` (never for audio)."""
        writer = self._direct_writer
        if writer is not None:
            ready = self.core.write_audio_now(event)  # an append with nothing queued before it
            if ready is not None:
                writer(ready)
                return
        self._submit_and_write(event, writer)

    def send_audio_now(self, audio: str) -> None:
        """:meth:`send_now` of one ``input_audio_buffer.append`` of ``audio`` (base64 text):
        the audio clock's path, which builds the event only once and hands it to the
        connection's writer of appends."""
        append = self._direct_append
        if append is not None:
            ready = self.core.write_append_now(audio)
            if ready is not None:
                append(ready)
                return
        self._submit_and_write({"type": _APPEND, "audio": audio}, self._direct_writer)

    def _submit_and_write(self, event: dict[str, Any],
                          writer: Callable[[dict[str, Any] | None], None] | None) -> None:
        for notice in self.core.submit(event):
            self.emit(EventKind.DROPPED, notice)
        if writer is None:
            self._outbound.set()
        else:
            writer(None)

    def write_now(self) -> None:
        """Write what is queued now, from the calling task, when the connection has a direct
        writer (a connected WebSocket with the default engine); otherwise wake the writer.
        What the socket does not take at once is left to the actor's writer task."""
        writer = self._direct_writer
        if writer is None:
            self._outbound.set()
        else:
            writer(None)

    def attach_writer(self, writer: Callable[[dict[str, Any] | None], None] | None,
                      append: Callable[[dict[str, Any]], None] | None = None) -> None:
        """The actor installs its connection's direct writer once connected, and removes it
        (None) before the connection closes. The writer writes the event it is given (already
        taken from the core), or with None what :meth:`take_outgoing` gives. ``append``, if
        given, writes one stamped append as :meth:`ClientCore.write_append_now
        <actors.proto.client.ClientCore.write_append_now>` makes it (the audio clock's
        frames); by default the writer does."""
        self._direct_writer = writer
        self._direct_append = append if writer is not None and append is not None else writer

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
