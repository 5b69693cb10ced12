"""One task that waits for data on many WebSocket connections (the lean front's read multiplexer).

Under trio each connection's reader waits for its socket on its own: a wait, a wake-up and a
task switch per message, with the readiness re-armed every time (``EPOLLONESHOT``). A streaming
session sends fifty small messages a second, so at a few hundred sessions that bookkeeping cost
more than handling the messages (measured: ~25 us a message against ~5 us for one task draining
an epoll set; ``bench/server_cost.py``).

:class:`ReadMux` keeps one level-triggered epoll set of the connections that are idle, waits for
*that* set's descriptor in one trio task, and calls each ready connection's callback in turn,
synchronously: the connection reads and handles what arrived there and then (see ``lean.py``:
only whole text messages the app accepts inline; anything else wakes the connection's own task).
A long batch yields to the scheduler every :data:`BATCH` callbacks so that timers and senders
keep their pace.

Linux only (``select.epoll``); :func:`open_mux` returns None elsewhere and the front reads each
connection in its own task as before.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Callable

import trio

__all__ = ["ReadMux", "open_mux", "BATCH"]

#: callbacks run between two yields to the scheduler
BATCH = 64

_log = logging.getLogger("standin.front.mux")


class ReadMux:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[], None]] = {}

    @property
    def closed(self) -> bool:
        return self._epoll.closed

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the mux's task) whenever ``fd`` is readable, until removed.
        A callback must not raise (one that does is logged and its descriptor removed)."""
        self._epoll.register(fd, select.EPOLLIN)
        self._callbacks[fd] = callback

    def discard(self, fd: int) -> None:
        if self._callbacks.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except OSError:  # already closed: the kernel dropped it from the set
                pass

    def __contains__(self, fd: int) -> bool:
        return fd in self._callbacks

    def __len__(self) -> int:
        return len(self._callbacks)

    async def run(self) -> None:
        """Dispatch readiness until cancelled."""
        epoll = self._epoll
        callbacks = self._callbacks
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                for n, (fd, _) in enumerate(epoll.poll(0)):
                    if n and n % BATCH == 0:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    callback = callbacks.get(fd)  # it may have left during a yield
                    if callback is None:
                        continue
                    try:
                        callback()
                    except Exception:  # one connection's failure never stops the others
                        _log.exception("read callback failed")
                        self.discard(fd)
        finally:
            epoll.close()
            callbacks.clear()


def open_mux() -> ReadMux | None:
    """A :class:`ReadMux`, or None where there is no epoll."""
    return ReadMux() if hasattr(select, "epoll") else None
