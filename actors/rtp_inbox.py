"""One receiving task per process for every call's RTP socket (the receiving twin of the
audio clock, :mod:`actors.pacer`).

A reader task per call costs, per datagram, a wake-up of that task, a task switch and a
re-arm of the socket in trio's epoll: ~35 us of the ~150 us the embedded server spent per
received frame (the rest: resampling and the model's VAD). Here every call's socket sits in one
level-triggered ``select.epoll`` of the process's :class:`RtpInbox`, and one task waits until
that epoll is readable (trio watches its descriptor like a socket's), then drains the ready
sockets: up to ``DRAIN_LIMIT`` datagrams each, and up to ``PASS_LIMIT`` sockets or
``PASS_BUDGET`` seconds per pass (one task step; the audio clock ticks between passes). A
flood waits in its socket's buffer, or the kernel drops it, as UDP goes; a socket left with
data is ready again next pass, and those a pass left out come first then.

A datagram is handed over at the scheduler pass after it arrived, as a reader task would
get it, so arrival times (``RtpStream.echo_rtt``) mean what they did.

Each socket's ``deliver(data, now)`` runs in the inbox's task: it must not block. What it
raises ends that socket's call only (``RtpInbox.add``'s ``on_error``); a bug in the inbox itself
fails every registered call the same way and the next :func:`rtp_inbox` starts another.

``select.epoll`` is Linux's; elsewhere :func:`rtp_inbox` returns None and the caller keeps a
reader task per call (:func:`actors.rtp_shell.run_rtp` does).
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
import trio

from actors.epoll_inbox import EpollInbox, inbox_service

__all__ = ["DRAIN_LIMIT", "PASS_BUDGET", "PASS_LIMIT", "RtpInbox", "rtp_inbox"]

#: datagrams taken from one socket per pass at most
DRAIN_LIMIT = 8
#: sockets drained per pass at most: a pass is one task step, and the clock's tick waits for
#: it (a received frame costs ~0.15 ms in the embedded server: 32 of them ~5 ms); the epoll is
#: level-triggered and hands the sockets it left out first next pass
PASS_LIMIT = 32
#: and a pass ends once it has run this long (s): a frame that ends a caller's turn costs the
#: model a few ms (commit, hearing, the answer), and several can come in one pass
PASS_BUDGET = 0.005


@attrs.define(eq=False)
class _Entry:
    receive: Callable[[int], bytes]
    deliver: Callable[[bytes, float], None]
    on_error: Callable[[BaseException], None]


@attrs.define(eq=False)
class RtpInbox(EpollInbox):
    """The process's receiving side for RTP sockets; see the module docstring."""

    pass_limit = PASS_LIMIT
    pass_budget = PASS_BUDGET

    #: datagrams handed over (a figure for benchmarks and tests)
    received: int = 0

    def add(self, sock: Any, deliver: Callable[[bytes, float], None],
            on_error: Callable[[BaseException], None]) -> None:
        """Receive on ``sock`` (a non-blocking stdlib socket, registered by its descriptor)
        until :meth:`remove`: each datagram goes to ``deliver(data, now)``; an exception
        from it goes to ``on_error`` and the socket is removed."""
        self._register(sock.fileno(), _Entry(sock.recv, deliver, on_error))

    def remove(self, sock: Any) -> None:
        """Stop receiving on ``sock`` (before it is closed)."""
        self._unregister(sock.fileno())

    def _serve(self, fd: int, entry: _Entry, now: float) -> None:
        """Drain up to ``DRAIN_LIMIT`` datagrams, each handed over with the pass's time."""
        for _ in range(DRAIN_LIMIT):
            try:
                data = entry.receive(2048)
            except BlockingIOError:
                return
            except OSError:  # an ICMP error queued on the socket: the next read goes on
                continue
            self.received += 1
            try:
                entry.deliver(data, now)
            except Exception as exc:  # that call ends; the others go on
                self._failed(fd, entry, exc)
                return


_INBOX: trio.lowlevel.RunVar[RtpInbox] = trio.lowlevel.RunVar("rtfleet_rtp_inbox")


def rtp_inbox() -> RtpInbox | None:
    """The process's RTP inbox (one per trio run), started on first use as a system task;
    None where ``select.epoll`` is missing."""
    return inbox_service(_INBOX, RtpInbox, "rtfleet rtp inbox")
