"""The trio-asyncio loop aiortc runs on, shared by every peer connection of a process.

See the package docstring ("Loop sharing", "Fixes": the executor replacement that makes
``pc.close()`` stop hanging).
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import attrs
import trio
import trio_asyncio

from actors.rtc.ice import _install_host_address_hook

__all__ = ["RtcLoop", "current_rtc_loop", "open_rtc_loop"]

T = TypeVar("T")


# -- the loop -------------------------------------------------------------------------------


@attrs.define(eq=False)
class RtcLoop:
    """A trio-asyncio loop shared by many peer connections (see the module docstring)."""

    loop: Any  # trio_asyncio.TrioEventLoop
    executor: ThreadPoolExecutor
    executor_fixed: bool = True
    peers: int = 0

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` as an asyncio coroutine on this loop, from trio.

        Works from any trio task, including one that did not inherit the loop's context
        (e.g. an HTTP request task of a server whose loop was opened elsewhere): the asyncio
        task is created with trio-asyncio's ``current_loop`` set, so the protocol callbacks
        and reader tasks it installs (aioice's UDP endpoints) can call ``get_running_loop()``.
        """
        if trio_asyncio.current_loop.get() is self.loop:
            return await self.loop.run_aio_coroutine(fn(*args))
        token = trio_asyncio.current_loop.set(self.loop)
        try:
            return await self.loop.run_aio_coroutine(fn(*args))
        finally:
            trio_asyncio.current_loop.reset(token)

    def time(self) -> float:
        return self.loop.time()


_CURRENT: contextvars.ContextVar[RtcLoop | None] = contextvars.ContextVar(
    "rtfleet_rtc_loop", default=None
)


def current_rtc_loop() -> RtcLoop | None:
    """The loop of the nearest enclosing :func:`open_rtc_loop` in this task's context."""
    return _CURRENT.get()


def _install_executor_fix(loop: Any, pool: ThreadPoolExecutor) -> None:
    """Make ``loop.run_in_executor`` a plain ``wrap_future(pool.submit(...))``.

    asyncio's ``wrap_future`` ignores a result that arrives after the asyncio future was
    cancelled, so a cancelled ``await loop.run_in_executor(...)`` ends at once.
    """

    def run_in_executor(executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future:
        if loop.is_closed():
            raise RuntimeError("the rtc loop is closed")
        target = executor if isinstance(executor, ThreadPoolExecutor) and not isinstance(
            executor, trio_asyncio.TrioExecutor) else pool
        return asyncio.wrap_future(target.submit(func, *args), loop=loop)

    loop.run_in_executor = run_in_executor


@asynccontextmanager
async def open_rtc_loop(
    *, executor_workers: int = 2, fix_executor: bool = True
) -> AsyncIterator[RtcLoop]:
    """Open one trio-asyncio loop for aiortc, with the executor fix installed.

    ``executor_workers`` bounds the threads that encode Opus for *all* peers on this loop.
    ``fix_executor=False`` keeps trio-asyncio's own ``run_in_executor`` (only to reproduce
    the close hang; never in production).  On exit, the loop's asyncio tasks are cancelled
    (close your peers first) and the pool's threads are joined in a worker thread.
    """
    _install_host_address_hook()
    pool = ThreadPoolExecutor(max_workers=executor_workers, thread_name_prefix="rtc-exec")
    try:
        async with trio_asyncio.open_loop() as loop:
            if fix_executor:
                _install_executor_fix(loop, pool)
            rtc = RtcLoop(loop, pool, fix_executor)
            token = _CURRENT.set(rtc)
            try:
                yield rtc
            finally:
                _CURRENT.reset(token)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(pool.shutdown, True)
