"""The server's trio-asyncio loop for aiortc, opened only when a WebRTC call needs it.

:class:`RtcHost` runs as a task of ``EmbeddedServer.serve``; the WebRTC call route
(``rtc_route.py``) asks it for ``(loop, nursery)`` with :meth:`RtcHost.acquire`.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

__all__ = ["RtcHost", "WebRtcUnavailable"]


class WebRtcUnavailable(Exception):
    """WebRTC calls cannot be answered here (the extra is missing, or ``webrtc=False``)."""


@attrs.define(eq=False)
class RtcHost:
    """The server's trio-asyncio loop for aiortc and the nursery its calls run in.

    Runs as a task of :meth:`EmbeddedServer.serve`. ``mode`` None opens the loop on the first
    :meth:`acquire` (so a server that never answers a call never imports aiortc), True at once,
    False never. An ``open_rtc_loop()`` already open around the server (a fleet opened with
    ``webrtc=True``) is used instead of a second loop. The calls' nursery is inside the loop's
    context, so on shutdown every call is closed (bounded) before the loop ends.
    """

    mode: bool | None
    loop: Any = None  # actors.rtc.loop.RtcLoop
    nursery: trio.Nursery | None = None
    error: str | None = None
    _wanted: trio.Event = attrs.field(factory=trio.Event)
    _ready: trio.Event = attrs.field(factory=trio.Event)

    async def acquire(self) -> tuple[Any, trio.Nursery]:
        """``(rtc loop, calls nursery)``, opening the loop if needed; WebRtcUnavailable if not."""
        self._wanted.set()
        await self._ready.wait()
        if self.error is not None or self.nursery is None:
            raise WebRtcUnavailable(self.error or "WebRTC is not available")
        return self.loop, self.nursery

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.mode is False:
            self.error = "WebRTC is disabled on this server (webrtc=False)"
            self._ready.set()
            task_status.started()
            return
        if self.mode is None:
            task_status.started()
            await self._wanted.wait()
        try:
            from actors.rtc.loop import current_rtc_loop, open_rtc_loop
        except ImportError as exc:
            self.error = f"WebRTC needs the webrtc extra: pip install 'rtfleet[webrtc]' ({exc})"
            self._ready.set()
            if self.mode:
                raise WebRtcUnavailable(self.error) from None
            return
        async with AsyncExitStack() as stack:
            loop = current_rtc_loop() or await stack.enter_async_context(open_rtc_loop())
            async with trio.open_nursery() as nursery:
                self.loop, self.nursery = loop, nursery
                self._ready.set()
                if self.mode:
                    task_status.started()
                await trio.sleep_forever()
