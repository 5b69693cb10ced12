"""What the process's inboxes share (:mod:`actors.rtp_inbox`, :mod:`actors.ws_inbox`): every
registered socket in one level-triggered ``select.epoll``, one task that waits until that epoll
is readable (trio watches its descriptor like a socket's) and then serves the ready sockets, up
to ``pass_limit`` sockets or ``pass_budget`` seconds a pass (one task step: the audio clock
ticks between passes; a socket left out is still ready, and comes first, next pass).

A subclass says how one ready socket is served (:meth:`EpollInbox._serve`); its entries carry
``on_error``, which gets what serving raised (that socket is removed, the others go on).
:func:`inbox_service` keeps one inbox per trio run: a bug in the inbox's own loop fails every
registered socket (``fail_all``) and the next call starts another. ``select.epoll`` is Linux's;
elsewhere :func:`inbox_service` returns None and callers keep a reader task per socket.
"""

from __future__ import annotations

import select
from typing import Any, ClassVar, TypeVar

import attrs
import trio

from actors.run_service import run_service

__all__ = ["EpollInbox", "inbox_service"]


@attrs.define(eq=False)
class EpollInbox:
    """Sockets by descriptor in one epoll, served by :meth:`run`; see the module docstring."""

    #: sockets served per pass at most, and the time after which a pass ends (s)
    pass_limit: ClassVar[int] = 32
    pass_budget: ClassVar[float] = 0.005

    _epoll: Any = attrs.field(factory=lambda: select.epoll())
    _entries: dict[int, Any] = attrs.field(factory=dict)
    #: passes run (a figure for benchmarks and tests)
    passes: int = 0
    #: what stopped the inbox's task (a bug); :func:`inbox_service` then starts another
    broken: BaseException | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def _register(self, fd: int, entry: Any) -> None:
        if fd in self._entries:
            self._epoll.modify(fd, select.EPOLLIN)
        else:
            self._epoll.register(fd, select.EPOLLIN)
        self._entries[fd] = entry

    def _unregister(self, fd: int) -> None:
        if self._entries.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except OSError:  # closed already: the kernel dropped it from the epoll itself
                pass

    def _serve(self, fd: int, entry: Any, now: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _failed(self, fd: int, entry: Any, exc: BaseException) -> None:
        """Serving ``fd`` raised ``exc``: that socket leaves the inbox and hears it."""
        if self._entries.get(fd) is entry:
            self._unregister(fd)
        entry.on_error(exc)

    async def run(self) -> None:
        """Until cancelled: wait for any registered socket to be readable, serve the ready ones."""
        epoll, entries = self._epoll, self._entries
        limit, budget = self.pass_limit, self.pass_budget
        while True:
            await trio.lowlevel.wait_readable(epoll)
            self.passes += 1
            now = trio.current_time()
            until = now + budget
            for fd, _ in epoll.poll(0, limit):
                entry = entries.get(fd)
                if entry is None:
                    continue
                self._serve(fd, entry, now)
                if trio.current_time() >= until:
                    break  # the rest are still ready: next pass

    def fail_all(self, exc: BaseException) -> None:
        """Every registered socket's ``on_error(exc)`` (the inbox broke); all are removed."""
        for fd, entry in list(self._entries.items()):
            self._unregister(fd)
            entry.on_error(exc)


I = TypeVar("I", bound=EpollInbox)


def inbox_service(var: trio.lowlevel.RunVar[Any], make: type[I], name: str) -> I | None:
    """The run's inbox of type ``make`` kept in ``var`` (started on first use as a system task,
    again after a bug broke it); None where ``select.epoll`` is missing."""
    if not hasattr(select, "epoll"):
        return None
    return run_service(var, make, _run_inbox, name)


async def _run_inbox(inbox: EpollInbox) -> None:
    try:
        await inbox.run()
    except Exception as exc:  # a bug in the inbox: every socket hears it, the run goes on
        inbox.broken = exc
        inbox.fail_all(exc)
    finally:
        inbox._epoll.close()
