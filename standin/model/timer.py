"""The wait for a model's next deadline, shared by every per-connection loop of the server.

A :class:`~.model.RealtimeSession` has deadlines (paced audio deltas, scheduled events):
``get_timer()`` says when the next one is due, ``handle_timer(now)`` returns its events. Each
WebSocket connection, WebRTC call and SIP call runs one task that loops on
``events = await timer.next()`` and sends them its own way; whoever feeds the model calls
``timer.poke()`` afterwards. A poke wakes the waiting task only when the next deadline moved:
most input (an audio append) moves none, and a task switch per append was a fifth of a loaded
server's CPU.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import trio

__all__ = ["ModelTimer"]


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
