"""The GPT-Live dialect as the shared client machinery sees it: :data:`LIVE`.

It fills :class:`actors.proto.dialect.Dialect` from the Live event tables (``events.py``), the
per-session edge that translates between the one contract and the Live wire (``edge.py``) and the
restore strategy (``restore.py``: a new session seeded with text).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from actors.proto.errors import ProtocolError
from actors.proto.live import events as live_events
from actors.proto.live.edge import LiveEdge
from actors.proto.live.restore import greeting, restore
from actors.proto.realtime import events as realtime_events

__all__ = ["LIVE", "LiveDialect"]

#: acknowledgement kinds, on the events the edge publishes (``session.started`` is Live's own)
_ACKS = MappingProxyType({
    "session.started": "session_started",
    "conversation.item.added": "item_added",
    "conversation.item.done": "item_added",
    "response.created": "response_started",
    "response.done": "response_done",
    "error": "error",
})

#: canonical (Realtime-shaped) client events a Live session accepts (see ``edge.py``)
_CANONICAL = frozenset({
    "input_audio_buffer.append", "conversation.item.create", "response.create", "session.update",
    "input_audio_buffer.commit", "input_audio_buffer.clear", "response.cancel",
    "output_audio_buffer.clear", "conversation.item.truncate", "conversation.item.delete",
    "conversation.item.retrieve",
})


@attrs.frozen
class LiveDialect:
    name: str = "live"
    max_append_audio: int = live_events.MAX_APPEND_AUDIO
    acks: Mapping[str, str] = _ACKS

    def parse_server_event(self, data: str | bytes | bytearray, *, max_size: int,
                           variant: str = "ga") -> dict[str, Any]:
        return live_events.parse_server_event(data, max_size=max_size)

    def validate_client_event(self, event: dict[str, Any]) -> dict[str, Any]:
        kind = event.get("type") if isinstance(event, dict) else None
        if kind not in _CANONICAL:
            return live_events.validate_client_event(event)
        realtime_events.validate_client_event(event)
        if kind == "conversation.item.create":
            item = event["item"]
            parts = item.get("content") or []
            if item.get("type") != "message" or not all(
                    isinstance(p, dict) and p.get("type") in ("input_text", "text")
                    for p in parts):
                raise ProtocolError(
                    "invalid_client_event",
                    "conversation.item.create: Live takes text messages only (sent as "
                    "session.commentary.append / session.instructions.append); audio, images "
                    "and function items have no Live client event",
                    detail={"type": kind, "field": "item"}, local=True)
        return event

    def to_wire(self, event: dict[str, Any], variant: str) -> dict[str, Any]:
        return event  # per-session: the edge translates (ClientCore.outgoing)

    def session_info(self, event: dict[str, Any]) -> tuple[str | None, int | None]:
        session = event.get("session") or {}
        return session.get("id"), session.get("expires_at")

    def error_event_id(self, event: dict[str, Any]) -> str | None:
        error = event.get("error") or {}
        return error.get("client_event_id") or event.get("client_event_id")

    def restore(self, core: Any, out: list[dict[str, Any]]) -> None:
        restore(core, out)

    def greeting(self, core: Any) -> list[dict[str, Any]]:
        return greeting(core)

    def new_edge(self) -> LiveEdge:
        return LiveEdge()


LIVE = LiveDialect()
