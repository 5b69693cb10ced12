"""The Realtime dialect as the shared client machinery sees it: :data:`REALTIME`.

It fills :class:`actors.proto.dialect.Dialect` from the event tables (``events.py``), the beta
edge (``beta.py``) and the restore strategy (``restore.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from actors.proto.realtime.beta import beta_to_ga_server, ga_to_beta_client
from actors.proto.realtime.events import (
    MAX_APPEND_AUDIO,
    ErrorInfo,
    SessionInfo,
    check_server_event,
    decode_frame,
    parse_server_event,
    validate_client_event,
)
from actors.proto.realtime.restore import restore

__all__ = ["REALTIME", "RealtimeDialect"]

#: server event type -> acknowledgement kind (:data:`actors.proto.dialect.ACK_KINDS`)
_ACKS = MappingProxyType({
    "session.created": "session_started",
    "session.updated": "config_acked",
    "conversation.item.added": "item_added",
    "conversation.item.done": "item_added",
    "conversation.item.created": "item_added",  # beta, translated
    "conversation.item.deleted": "item_deleted",
    "response.created": "response_started",
    "response.done": "response_done",
    "error": "error",
})


@attrs.frozen
class RealtimeDialect:
    name: str = "realtime"
    max_append_audio: int = MAX_APPEND_AUDIO
    acks: Mapping[str, str] = _ACKS

    def parse_server_event(self, data: str | bytes | bytearray, *, max_size: int,
                           variant: str = "ga") -> dict[str, Any]:
        if variant == "ga":
            return parse_server_event(data, max_size=max_size)
        return check_server_event(beta_to_ga_server(decode_frame(data, max_size=max_size)))

    def validate_client_event(self, event: dict[str, Any]) -> dict[str, Any]:
        return validate_client_event(event)

    def to_wire(self, event: dict[str, Any], variant: str) -> dict[str, Any]:
        return ga_to_beta_client(event) if variant == "beta" else event

    def session_info(self, event: dict[str, Any]) -> tuple[str | None, int | None]:
        info = SessionInfo.from_event(event)
        return info.id, info.expires_at

    def error_event_id(self, event: dict[str, Any]) -> str | None:
        return ErrorInfo.from_event(event).event_id

    def restore(self, core: Any, out: list[dict[str, Any]]) -> None:
        restore(core, out)


REALTIME = RealtimeDialect()
