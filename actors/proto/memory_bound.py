"""ClientCore's memory bound: the restore data of a session kept under ``max_restore_bytes``.

What the core keeps to restore a session (the mirror's items and transcripts, written creates
awaiting their acknowledgement, pending deletes) is measured as JSON text; beyond the bound the
oldest is evicted (conversation items first, then pending deletes, then the oldest
unacknowledged creates) and reported once as a :class:`SessionMemoryLimit` value. The functions
work on the core's books (``core``: a :class:`~actors.proto.client.ClientCore`, their only
caller).
"""

from __future__ import annotations

from typing import Any

from actors.proto.client_values import SessionMemoryLimit
from actors.proto.mirror import json_size

__all__ = ["delete_size", "enforce_limit", "limit_notice"]



def enforce_limit(core: Any) -> None:
    """Evict the oldest restore data until :attr:`restore_size` fits the bound."""
    limit = core.max_restore_bytes
    if core.restore_size <= limit:
        return
    core.mirror.trim(max(0, limit - core._pending_size - core._deletes_size))
    while core.restore_size > limit and core._deletes:
        item_id = next(iter(core._deletes))
        del core._deletes[item_id]
        freed = delete_size(item_id)
        core._deletes_size -= freed
        core._evicted_bytes += freed
        core.mirror.apply_server({"type": "conversation.item.deleted", "item_id": item_id})
    evicted, freed = core._unreported
    while core.restore_size > limit and core._pending:
        event_id = next(iter(core._pending))
        for waiting in (core._pending_responses, core._pending_updates):
            if event_id in waiting:
                waiting.remove(event_id)
        size = core._pending_bytes[event_id]
        core._unpend(event_id)
        evicted += 1
        freed += size
        core._evicted_pending += 1
        core._evicted_bytes += size
    core._unreported = (evicted, freed)

def limit_notice(core: Any) -> SessionMemoryLimit | None:
    mirrored = core.mirror.take_eviction()
    pending, freed = core._unreported
    if mirrored is None and not pending:
        return None
    core._unreported = (0, 0)
    return SessionMemoryLimit({
        "limit": "max_restore_bytes",
        "max_bytes": core.max_restore_bytes,
        "size": core.restore_size,
        "evicted_items": mirrored["evicted_items"] if mirrored else 0,
        "evicted_pending": pending,
        "evicted_bytes": (mirrored["evicted_bytes"] if mirrored else 0) + freed,
    })


def delete_size(item_id: str) -> int:
    """Bytes a pending delete is counted for: its item id and an event id."""
    return json_size(item_id) + 24
