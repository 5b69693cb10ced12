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

**Gathering under load.** Waking the process is the dearest thing it does (a return from the
kernel's wait, a pass of trio's run loop, the readiness re-armed): a fleet's client writes its
frames in bursts (its audio clock ticks every few milliseconds), and a mux that wakes for
each frame as it lands pays that per message. So when it is woken again soon after its last
pass (within ``2 * linger``), it does not wait for readiness but sleeps until ``linger`` after
that pass and then takes everything that has arrived, in one pass, until a pass finds nothing.
A message waits at most ``linger`` (:data:`LINGER`, 1 ms) longer, and only while messages keep
coming that often; a quiet connection's message is taken as soon as it lands.

Linux only (``select.epoll``); :func:`open_mux` returns None elsewhere and the front reads each
connection in its own task as before.
"""

from __future__ import annotations

import logging
import math
import select
from collections.abc import Callable

import trio

__all__ = ["ReadMux", "open_mux", "BATCH", "LINGER"]

#: callbacks run between two yields to the scheduler
BATCH = 64
#: seconds a message may wait for others while messages come often (see "Gathering")
LINGER = 0.001

_log = logging.getLogger("standin.front.mux")


class ReadMux:
    def __init__(self, linger: float = LINGER) -> None:
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self.linger = linger
        self.passes = 0  # passes over the ready descriptors (tests and profiling)

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
        linger = self.linger
        last = -math.inf  # when the last pass began
        gathering = False
        try:
            while True:
                if gathering:
                    await trio.sleep_until(last + linger)
                else:
                    await trio.lowlevel.wait_readable(epoll.fileno())
                now = trio.current_time()
                ready = epoll.poll(0)
                gathering = bool(ready) and linger > 0 and now - last < 2 * linger
                last = now
                self.passes += 1
                for n, (fd, _) in enumerate(ready):
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
