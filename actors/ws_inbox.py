"""One reading task per process for every WebSocket connection's socket (the receiving twin of
the audio clock, :mod:`actors.pacer`; the WebSocket sibling of :mod:`actors.rtp_inbox`).

A reader task per connection costs, per arrival of the server's bytes, a wake-up of that task,
a task switch and a re-arm of its socket in trio's epoll (one ``epoll_ctl`` each time): at a few
hundred streaming sessions, whose servers send a burst of events at every turn and an audio
delta every 100 ms, that was a good part of the client's CPU. Here every connection's socket
sits in one level-triggered ``select.epoll`` of the process's :class:`WsInbox`; one task waits
until that epoll is readable (trio watches its descriptor like a socket's) and then serves the
ready sockets: each one's ``on_ready()`` reads once and handles what it read
(:meth:`actors.wsconn.WsConnection.receive_pushed`: the frames cut, every whole message handed
on, from this task). A pass serves up to ``PASS_LIMIT`` sockets or runs ``PASS_BUDGET`` seconds
(one task step; the audio clock ticks between passes); the epoll is level-triggered, so a
socket with more to read, or left out, is ready again next pass, and those left out come
first then.

``on_ready`` runs in the inbox's task: it must not block. What it raises ends that socket's
entry only (``WsInbox.add``'s ``on_error``: the connection's own task raises it); a bug in the
inbox itself fails every registered socket the same way and the next :func:`ws_inbox` starts
another.

``select.epoll`` is Linux's; elsewhere :func:`ws_inbox` returns None and each connection keeps
its reader task.
"""

from __future__ import annotations

import select
from typing import Any, Callable

import attrs
import trio

from actors.run_service import run_service

__all__ = ["PASS_BUDGET", "PASS_LIMIT", "WsInbox", "ws_inbox"]

#: sockets served per pass at most (one read each): a pass is one task step, and the audio
#: clock's tick waits for it
PASS_LIMIT = 64
#: and a pass ends once it has run this long (s); the sockets it left out are still ready
PASS_BUDGET = 0.004


@attrs.define(eq=False)
class _Entry:
    on_ready: Callable[[], None]
    on_error: Callable[[BaseException], None]


@attrs.define(eq=False)
class WsInbox:
    """The process's reading side for WebSocket sockets; see the module docstring."""

    _epoll: Any = attrs.field(factory=lambda: select.epoll())
    _entries: dict[int, _Entry] = attrs.field(factory=dict)
    #: sockets served, passes run (figures for benchmarks and tests)
    served: int = 0
    passes: int = 0
    #: what stopped the inbox's task (a bug); :func:`ws_inbox` then starts another
    broken: BaseException | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, fd: int, on_ready: Callable[[], None],
            on_error: Callable[[BaseException], None]) -> None:
        """Serve descriptor ``fd`` (a non-blocking socket's) until :meth:`remove`: while it is
        readable, ``on_ready()`` once a pass; an exception from it goes to ``on_error`` and the
        descriptor is removed."""
        if fd in self._entries:
            self._epoll.modify(fd, select.EPOLLIN)
        else:
            self._epoll.register(fd, select.EPOLLIN)
        self._entries[fd] = _Entry(on_ready, on_error)

    def remove(self, fd: int) -> None:
        """Stop serving ``fd`` (before it is closed); nothing if it is not served."""
        if self._entries.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except OSError:  # closed already: the kernel dropped it from the epoll itself
                pass

    async def run(self) -> None:
        """Until cancelled: wait for any registered socket to be readable, serve the ready ones."""
        epoll, entries = self._epoll, self._entries
        now = trio.lowlevel.current_clock().current_time
        while True:
            await trio.lowlevel.wait_readable(epoll)
            self.passes += 1
            until = now() + PASS_BUDGET
            for fd, _ in epoll.poll(0, PASS_LIMIT):
                entry = entries.get(fd)
                if entry is None:
                    continue
                self.served += 1
                try:
                    entry.on_ready()
                except Exception as exc:  # that connection ends; the others go on
                    if entries.get(fd) is entry:
                        self.remove(fd)
                    entry.on_error(exc)
                if now() >= until:
                    break  # the rest are still ready: next pass

    def fail_all(self, exc: BaseException) -> None:
        """Every registered socket's ``on_error(exc)`` (the inbox broke); all are removed."""
        for fd, entry in list(self._entries.items()):
            self.remove(fd)
            entry.on_error(exc)


_INBOX: trio.lowlevel.RunVar[WsInbox] = trio.lowlevel.RunVar("rtfleet_ws_inbox")


def ws_inbox() -> WsInbox | None:
    """The process's WebSocket inbox (one per trio run), started on first use as a system
    task; None where ``select.epoll`` is missing."""
    if not hasattr(select, "epoll"):
        return None
    return run_service(_INBOX, WsInbox, _run_inbox, "rtfleet websocket inbox")


async def _run_inbox(inbox: WsInbox) -> None:
    try:
        await inbox.run()
    except Exception as exc:  # a bug in the inbox: every connection hears it, the run goes on
        inbox.broken = exc
        inbox.fail_all(exc)
    finally:
        inbox._epoll.close()
