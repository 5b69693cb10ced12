"""The trio shell around a sans-I/O :class:`~actors.proto.sip.SipUserAgent` on a UDP socket.

Shared by the SIP actor's phone (``actors.sip_phone.SipPhone``) and the embedded server's UAS: both
keep ``port``, ``ua`` (the agent), ``_sock`` (the UDP socket), ``_nursery``, ``_wake`` (a
trio.Event) and define ``_on_event(event)`` and ``_stop_calls()``. ``_serve`` binds the socket,
builds the agent and runs its timer and the receive loop until cancelled; ``_flush`` sends what
the agent has to send and hands its events on, never blocking; ``_timer`` re-arms the agent's
one timer when ``_flush`` ran and runs the agent's timers when one is due.
"""

from __future__ import annotations

import math
import socket as stdlib_socket
from typing import Any, Callable

import trio

from actors.proto.sip import SipConfig, SipUserAgent

__all__ = ["SipAgentShell", "udp_socket"]


def udp_socket(host: str, port: int) -> stdlib_socket.socket:
    """A bound non-blocking UDP socket (wrap it with ``trio.socket.from_stdlib_socket``).

    The SIP loop sends synchronously on it (``sendto`` never waits: a datagram the kernel
    cannot take is lost, and SIP timers retransmit), so one task can own the agent."""
    sock = stdlib_socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class SipAgentShell:
    __slots__ = ()

    port: int
    ua: Any
    _sock: Any
    _nursery: trio.Nursery | None
    _wake: trio.Event

    def _on_event(self, event: object) -> None:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def _stop_calls(self) -> None:  # pragma: no cover - subclasses define it
        """End the live calls (the socket is still open: a BYE can still go out)."""
        raise NotImplementedError

    async def _serve(self, host: str, port: int, config: Callable[[int], SipConfig],
                     task_status: trio.TaskStatus[int]) -> None:
        """Bind ``host:port``, build the agent from ``config(bound port)``, serve until
        cancelled (``task_status.started(bound port)``); then end the calls and close."""
        raw = udp_socket(host, port)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            self.port = raw.getsockname()[1]
            self._sock = raw
            self.ua = SipUserAgent(config(self.port))
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._timer)
                task_status.started(self.port)
                while True:
                    data, address = await sock.recvfrom(65535)
                    self.ua.receive_datagram(data, address[:2], trio.current_time())
                    self._flush()
        finally:
            self._stop_calls()
            sock.close()
            self._sock = None

    async def _timer(self) -> None:
        assert self.ua is not None
        while True:
            due = self.ua.get_timer()
            self._wake = trio.Event()
            with trio.move_on_at(math.inf if due is None else due):
                await self._wake.wait()
            now = trio.current_time()
            if due is not None and now >= due:
                # only when a timer is due: a wake from ``_flush`` (every datagram in or
                # out) only re-arms; handling walks every transaction and call twice
                self.ua.handle_timer(now)
                self._flush()

    def _flush(self) -> None:
        """Send what the agent has to send, then act on its events (never blocks)."""
        assert self.ua is not None and self._sock is not None
        while True:
            for data, address in self.ua.datagrams_to_send():
                try:
                    self._sock.sendto(data, address)
                except OSError:
                    pass  # UDP: a send that fails is a lost datagram; timers retransmit
            event = self.ua.next_event()
            if event is None:
                break
            self._on_event(event)
        self._wake.set()
