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

from typing import Callable

import attrs
import trio

from actors.epoll_inbox import EpollInbox, inbox_service

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
class WsInbox(EpollInbox):
    """The process's reading side for WebSocket sockets; see the module docstring."""

    pass_limit = PASS_LIMIT
    pass_budget = PASS_BUDGET

    #: sockets served (a figure for benchmarks and tests)
    served: int = 0

    def add(self, fd: int, on_ready: Callable[[], None],
            on_error: Callable[[BaseException], None]) -> None:
        """Serve descriptor ``fd`` (a non-blocking socket's) until :meth:`remove`: while it is
        readable, ``on_ready()`` once a pass; an exception from it goes to ``on_error`` and the
        descriptor is removed."""
        self._register(fd, _Entry(on_ready, on_error))

    def remove(self, fd: int) -> None:
        """Stop serving ``fd`` (before it is closed); nothing if it is not served."""
        self._unregister(fd)

    def _serve(self, fd: int, entry: _Entry, now: float) -> None:
        self.served += 1
        try:
            entry.on_ready()
        except Exception as exc:  # that connection ends; the others go on
            self._failed(fd, entry, exc)


_INBOX: trio.lowlevel.RunVar[WsInbox] = trio.lowlevel.RunVar("rtfleet_ws_inbox")


def ws_inbox() -> WsInbox | None:
    """The process's WebSocket inbox (one per trio run), started on first use as a system
    task; None where ``select.epoll`` is missing."""
    return inbox_service(_INBOX, WsInbox, "rtfleet websocket inbox")
