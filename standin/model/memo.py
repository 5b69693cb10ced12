"""A memo of values computed lately, bounded by the bytes it holds (sans-I/O).

The server's per-append path keeps what it computed for audio it has seen (a load test's sessions
send the same audio): the bytes a base64 text decodes to (``append.py``), a chunk's frame
energies (``vad.py``). Both are a dict **emptied when its byte budget is full**: no recency
order to keep per look-up (an LRU's bookkeeping would cost more than the look-up saves), and a
fleet's working set (a few files' chunks) is refilled in one pass.

The hot path reads through :attr:`Memo.get`, the dict's own bound ``get`` (one attribute look-up
and a C call; the dict is emptied in place, never replaced, so the bound method stays right).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Memo"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """Values by key, emptied at once when adding one would pass ``budget_bytes`` (the sizes the
    caller gives) or ``max_entries``."""

    __slots__ = ("_items", "get", "budget_bytes", "max_entries", "held_bytes")

    def __init__(self, budget_bytes: int, max_entries: int | None = None) -> None:
        self._items: dict[K, V] = {}
        #: ``dict.get`` of the values: ``memo.get(key)`` is the value or None
        self.get = self._items.get
        self.budget_bytes = budget_bytes
        self.max_entries = max_entries
        #: the bytes the values held now were given as
        self.held_bytes = 0

    def put(self, key: K, value: V, size: int) -> None:
        """Keep ``value`` under ``key``, counted as ``size`` bytes (emptied first if it would
        not fit; a value larger than the whole budget is not kept)."""
        if size > self.budget_bytes:
            return
        items = self._items
        if self.held_bytes + size > self.budget_bytes or (
                self.max_entries is not None and len(items) >= self.max_entries):
            self.clear()
        items[key] = value
        self.held_bytes += size

    def clear(self) -> None:
        self._items.clear()
        self.held_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)
