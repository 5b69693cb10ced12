"""The wait for a model's next deadline, shared by every per-connection loop of the server.

A :class:`~.model.RealtimeSession` has deadlines (paced audio deltas, scheduled events):
``get_timer()`` says when the next one is due, ``handle_timer(now)`` returns its events. Each
WebSocket connection, WebRTC call and SIP call runs one task that loops on
``events = await timer.next()`` and sends them its own way; whoever feeds the model calls
``timer.poke()`` afterwards. A poke wakes the waiting task only when the next deadline moved:
most input (an audio append) moves none, and a task switch per append was a fifth of a loaded
server's CPU.

A WebSocket session's deadlines go to one task per trio run instead (:class:`Deadlines`, through
a :class:`SharedTimer` per connection): it sleeps until the earliest deadline of all, and calls
each due connection's ``fire(now)`` synchronously (which handles the model's timer and writes
the events at once). A paced answer's chunk then costs no task switch of its own and no timeout
of its own: a per-connection wait woke through trio's cancellation machinery (a ``Cancelled``
raised and caught) at every chunk, and at every poke that moved its deadline (an append that
answered a due chunk first), about a fifth of a loaded server's CPU again.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable
from typing import Any

import attrs
import trio

from actors.run_service import run_service

__all__ = ["ModelTimer", "SharedTimer", "Deadlines"]

_log = logging.getLogger("standin.model.timer")


@attrs.define(eq=False)
class ModelTimer:
    session: Any  # a RealtimeSession
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _armed_for: float | None = None  # the deadline the waiting task waits for

    def poke(self) -> None:
        """The model received something: re-arm the waiting task if its deadline moved."""
        if self.session.get_timer() != self._armed_for:
            self._wake.set()

    async def next(self) -> list[dict[str, Any]]:
        """Wait for the next deadline (or a poke that moved it); the events it is due (maybe none)."""
        due = self.session.get_timer()
        self._armed_for = due
        self._wake = trio.Event()
        with trio.move_on_at(math.inf if due is None else due):
            await self._wake.wait()
        return self.session.handle_timer(trio.current_time())


_DEADLINES: trio.lowlevel.RunVar[Deadlines] = trio.lowlevel.RunVar("standin_deadlines")


class Deadlines:
    """The run's deadlines of every :class:`SharedTimer` (a heap; stale entries skipped)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, SharedTimer]] = []
        self._seq = itertools.count()
        self._wake = trio.Event()
        self._sleeping_until = math.inf
        #: what stopped the task (a bug): the next :func:`Deadlines.of_run` starts another
        self.broken: BaseException | None = None

    @classmethod
    def of_run(cls) -> Deadlines:
        """The current trio run's (started on first use, as a system task)."""
        return run_service(_DEADLINES, cls, cls.run, "standin deadlines")

    def arm(self, timer: SharedTimer, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), timer))
        if due < self._sleeping_until:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._heap)

    async def run(self) -> None:
        heap = self._heap
        try:
            while True:
                now = trio.current_time()
                while heap and heap[0][0] <= now:
                    due, _, timer = heapq.heappop(heap)
                    if timer.armed_for != due:
                        continue  # re-armed since, or closed
                    timer.armed_for = None
                    try:
                        timer.fire(now)
                    except Exception:  # fire reports its own failures; never stop the others
                        _log.exception("deadline handler failed")
                self._sleeping_until = heap[0][0] if heap else math.inf
                self._wake = trio.Event()
                with trio.move_on_at(self._sleeping_until):
                    await self._wake.wait()
        except BaseException as exc:
            self.broken = exc
            if not isinstance(exc, (trio.Cancelled, KeyboardInterrupt)):
                _log.exception("the deadline task failed")
            raise


@attrs.define(eq=False)
class SharedTimer:
    """:class:`ModelTimer` for a shell whose deadline work is synchronous: the run's one
    :class:`Deadlines` task calls ``fire(now)`` when the session's deadline is due; ``fire``
    handles it (``session.handle_timer(now)``) and calls :meth:`poke` (or not, to pause: a
    later :meth:`poke` re-arms). ``fire`` must not raise."""

    session: Any  # a RealtimeSession
    fire: Callable[[float], None]
    deadlines: Deadlines = attrs.field(factory=Deadlines.of_run)
    #: the deadline armed (None: none)
    armed_for: float | None = None
    closed: bool = False

    def poke(self) -> None:
        """The model received or emitted something: arm its next deadline if it moved."""
        if self.closed:
            return
        due = self.session.get_timer()
        if due != self.armed_for:
            self.armed_for = due
            if due is not None:
                self.deadlines.arm(self, due)

    def close(self) -> None:
        """No more deadlines (an armed one is skipped when it comes; the session and its
        handler are let go at once)."""
        self.closed = True
        self.armed_for = None
        self.fire = _nothing
        self.session = None


def _nothing(now: float) -> None:
    pass
