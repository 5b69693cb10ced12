"""How asyncio code reaches a trio run: where the run lives (its *host*) and the calls into it.

Two hosts, one contract (``start(main, on_done)``):

``guest``   trio's guest mode (``trio.lowlevel.start_guest_run``) on the running asyncio loop:
            trio's tasks run on the asyncio thread, between asyncio's callbacks; only trio's
            I/O wait sits in a helper thread.
``thread``  ``trio.run`` in a dedicated thread; the trio-asyncio loop for WebRTC lives there.

Either way asyncio never calls a trio API directly (outside a trio task trio fails with
``'RunContext' object has no attribute 'runner'``): a call is handed to the run with
``TrioToken.run_sync_soon`` (thread-safe, FIFO) and its result comes back with
``loop.call_soon_threadsafe``. :class:`TrioPortal` does both.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable, TypeVar

import attrs
import outcome
import trio

from orchestrator.fleet import FleetError

__all__ = ["HOSTS", "TrioPortal", "TrioRun"]

T = TypeVar("T")


def settle(fut: asyncio.Future[Any], result: outcome.Outcome[Any]) -> None:
    """Complete ``fut`` with ``result`` unless it is already done (cancelled by its caller)."""
    if fut.done():
        return
    if isinstance(result, outcome.Error):
        fut.set_exception(result.error)
    else:
        fut.set_result(result.value)


@attrs.define(eq=False)
class TrioPortal:
    """Calls from the asyncio loop into a trio run (and results back)."""

    loop: asyncio.AbstractEventLoop
    token: trio.lowlevel.TrioToken
    #: the nursery the calls run in; cancelled when the fleet closes
    nursery: trio.Nursery
    #: the nursery subscription pumps run in; it outlives the fleet, so they see its last events
    pumps: trio.Nursery
    #: set when the fleet has closed: pumps forward what is left without waiting for credit
    flushing: trio.Event = attrs.field(factory=trio.Event)

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """From trio: run ``fn(*args)`` on the asyncio loop (dropped if the loop has closed)."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def schedule(self, fn: Callable[[], Any]) -> None:
        """From asyncio: run ``fn()`` in the trio run, outside any task (FIFO with other calls)."""
        try:
            self.token.run_sync_soon(fn)
        except trio.RunFinishedError:
            raise FleetError("the fleet is closed") from None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the synchronous ``fn(*args)`` in the trio run; its result or error comes back."""
        fut: asyncio.Future[T] = self.loop.create_future()
        self.schedule(lambda: self.post(settle, fut, outcome.capture(fn, *args)))
        return await fut

    async def run(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``afn(*args)`` as a trio task. Cancelling the asyncio caller cancels it; the
        fleet closing first gives FleetError."""
        fut: asyncio.Future[T] = self.loop.create_future()
        scope = trio.CancelScope()

        async def task() -> None:
            result: outcome.Outcome[T] = outcome.Error(FleetError("the fleet closed during the call"))
            try:
                with scope:
                    try:
                        result = outcome.Value(await afn(*args))
                    except Exception as exc:  # trio.Cancelled is not handed to asyncio
                        result = outcome.Error(exc)
            finally:
                self.post(settle, fut, result)

        def spawn() -> None:
            try:
                self.nursery.start_soon(task)
            except RuntimeError:  # the calls nursery has closed
                self.post(settle, fut, outcome.Error(FleetError("the fleet is closed")))

        self.schedule(spawn)
        try:
            return await fut
        except asyncio.CancelledError:
            try:
                self.token.run_sync_soon(scope.cancel)
            except trio.RunFinishedError:
                pass
            raise


class TrioRun:
    """Lets asyncio cancel the whole trio run, whether or not it has started yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._cancelled = False

    def attach(self, scope: trio.CancelScope) -> None:
        """From trio, first thing in the run."""
        with self._lock:
            self._token, self._scope = trio.lowlevel.current_trio_token(), scope
            if self._cancelled:
                scope.cancel()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._token is not None and self._scope is not None:
                try:
                    self._token.run_sync_soon(self._scope.cancel)
                except trio.RunFinishedError:
                    pass


Main = Callable[[], Awaitable[None]]
OnDone = Callable[[outcome.Outcome[None]], None]


def start_guest(loop: asyncio.AbstractEventLoop, main: Main, on_done: OnDone) -> None:
    """``main`` runs as a trio guest on ``loop`` (this thread); ``on_done`` is called on it."""
    trio.lowlevel.start_guest_run(
        main,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        run_sync_soon_not_threadsafe=loop.call_soon,
        done_callback=on_done,
        host_uses_signal_set_wakeup_fd=True,
    )


def start_thread(loop: asyncio.AbstractEventLoop, main: Main, on_done: OnDone) -> None:
    """``main`` runs under ``trio.run`` in a new daemon thread; ``on_done`` is called on ``loop``."""

    def run() -> None:
        result = outcome.capture(trio.run, main)
        try:
            loop.call_soon_threadsafe(on_done, result)
        except RuntimeError:  # the loop has closed
            pass

    threading.Thread(target=run, name="rtfleet-trio", daemon=True).start()


HOSTS: dict[str, Callable[[asyncio.AbstractEventLoop, Main, OnDone], None]] = {
    "guest": start_guest,
    "thread": start_thread,
}
