"""The trio shell around a sans-I/O :class:`~actors.proto.sip.SipUserAgent` on a UDP socket.

Shared by the SIP actor's phone (``actors.sip.SipPhone``) and the embedded server's UAS: both
keep ``ua`` (the agent), ``_sock`` (a trio UDP socket), ``_wake`` (a trio.Event) and define
``_on_event(event)``. ``_flush`` sends what the agent has to send and hands its events on,
never blocking; ``_timer`` re-arms the agent's one timer and wakes early when ``_flush`` ran.
"""

from __future__ import annotations

import math
from typing import Any

import trio

__all__ = ["SipAgentShell"]


class SipAgentShell:
    __slots__ = ()

    ua: Any
    _sock: Any
    _wake: trio.Event

    def _on_event(self, event: object) -> None:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    async def _timer(self) -> None:
        assert self.ua is not None
        while True:
            due = self.ua.get_timer()
            self._wake = trio.Event()
            with trio.move_on_at(math.inf if due is None else due):
                await self._wake.wait()
            self.ua.handle_timer(trio.current_time())
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
