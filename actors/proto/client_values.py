"""The values ClientCore hands out and the constants it stamps events with.

:class:`ClientCounters` (totals), :class:`RestoreSummary` (what one connection's restore
contained), :class:`SessionMemoryLimit` (the memory bound's report), the id prefixes and
:data:`DEFAULT_MAX_RESTORE_BYTES`. Shared by :mod:`actors.proto.client` and the dialects'
restore strategies.
"""

from __future__ import annotations

from typing import Any

import attrs

from actors.proto.errors import ProtocolError
from actors.proto.mirror import DEFAULT_MAX_BYTES

__all__ = ["ClientCounters", "DEFAULT_MAX_RESTORE_BYTES", "EVENT_ID_PREFIX", "ITEM_ID_PREFIX",
           "RestoreSummary", "SessionMemoryLimit", "event_id_error"]

#: Default bound of a session's restore data (``ClientCore(max_restore_bytes=...)``), bytes.
DEFAULT_MAX_RESTORE_BYTES = DEFAULT_MAX_BYTES

#: Prefix of the event ids the core assigns; callers must not use it for their own ids.
EVENT_ID_PREFIX = "evt_c_"
#: Prefix of the item ids the core assigns.
ITEM_ID_PREFIX = "item_c_"



@attrs.frozen
class ClientCounters:
    """Totals since the core was made (a snapshot)."""

    submitted: int
    written: int
    resent: int
    replayed_items: int
    skipped_items: int
    discarded_items: int
    reissued_responses: int
    dropped_audio: int
    acked: int
    failed: int
    #: conversation items evicted by the memory bound, and the bytes it freed in all
    evicted_items: int = 0
    evicted_bytes: int = 0
    #: unacknowledged creates evicted by the memory bound (no longer re-sent)
    evicted_pending: int = 0
    #: audio turns in flight at a drop that were re-sent, and those that could not be
    replayed_turns: int = 0
    lost_turns: int = 0


@attrs.frozen
class RestoreSummary:
    """What the restore sequence of one connection contained (for an ``info`` event)."""

    connection: int
    session_id: str | None
    config_sent: bool
    replayed_items: int
    skipped_items: int
    resent: int
    reissued_response: bool
    replayed_turns: int = 0


class SessionMemoryLimit(ProtocolError):
    """The session's restore data went over ``max_restore_bytes`` and the oldest was evicted.

    Returned (never raised) by :meth:`ClientCore.receive`; ``detail`` is ``{"limit":
    "max_restore_bytes", "max_bytes", "size", "evicted_items", "evicted_pending",
    "evicted_bytes"}``, the evictions since the previous report.
    """

    def __init__(self, detail: dict[str, Any]) -> None:
        super().__init__(
            "session_memory_limit",
            f"session restore data over {detail['max_bytes']} bytes: evicted the oldest "
            f"{detail['evicted_items']} items and {detail['evicted_pending']} unacknowledged "
            f"events ({detail['evicted_bytes']} bytes); they will not be restored",
            detail=detail,
            local=True,
        )


def event_id_error(event: dict[str, Any], problem: str) -> ProtocolError:
    return ProtocolError(
        "invalid_client_event",
        f"{event['type']}: event_id {problem}",
        detail={"type": event["type"], "field": "event_id"},
        local=True,
    )
