"""Callbacks into trio: :class:`Inbox` hands pyee callbacks' items to a trio memory channel."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs
import trio

__all__ = ["Inbox"]

T = TypeVar("T")


# -- callbacks into trio ----------------------------------------------------------------------


@attrs.define(eq=False)
class Inbox(Generic[T]):
    """A bounded trio memory channel fed by pyee callbacks (which cannot await).

    Overflow policy: the *newest* item is dropped and counted in ``dropped`` (a full inbox
    means the trio side is not reading; dropping keeps the asyncio side from growing memory).
    Items pushed after ``close()`` are ignored.
    """

    name: str
    size: int | float
    sender: trio.MemorySendChannel[T] = attrs.field(init=False)
    receiver: trio.MemoryReceiveChannel[T] = attrs.field(init=False)
    dropped: int = 0
    delivered: int = 0

    def __attrs_post_init__(self) -> None:
        self.sender, self.receiver = trio.open_memory_channel(self.size)

    def push(self, item: T) -> bool:
        try:
            self.sender.send_nowait(item)
        except trio.WouldBlock:
            self.dropped += 1
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        self.delivered += 1
        return True

    def close(self) -> None:
        self.sender.close()
