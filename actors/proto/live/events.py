"""GPT-Live events: the wire vocabulary as data tables, parsing and validation (sans-I/O).

One row per event type the ``openai`` package's ``openai.types.live`` knows (15 client events,
28 server events; ``../shared/PROTOCOL.md`` §6), listing the fields rtfleet relies on and their
JSON types. The table machinery (fields, nested paths, exact JSON types, error details) is the
Realtime dialect's (:mod:`actors.proto.realtime.events`); only the tables differ. Unknown fields
pass through; an unknown type or a missing/mistyped required field is a :class:`ProtocolError`
(``unknown_event_type`` / ``invalid_field``), returned by the client core as a value so the
session lives on.

Live is audio-first: there is no user text message, no commit and no response object on the
primary connection. What rtfleet's one contract needs from it is built by the edge
(:mod:`actors.proto.live.edge`), not here.
"""

from __future__ import annotations

from typing import Any

from actors.proto.errors import ProtocolError, excerpt
from actors.proto.realtime.events import Field, _compile, check_fields, decode_frame

__all__ = ["CLIENT_TYPES", "SERVER_TYPES", "CLOSE_REASONS", "MAX_APPEND_AUDIO",
           "parse_server_event", "validate_client_event"]

#: the largest ``session.input_audio.append`` audio string sent in one event (as Realtime)
MAX_APPEND_AUDIO = 15 * 2**20

#: ``session.closed`` reasons (``SessionClosedEvent.reason``)
CLOSE_REASONS = frozenset({"close_requested", "expired", "content", "remote_hangup",
                           "connection_lost"})

_S, _I, _N, _B, _O, _A, _NULL = "string", "integer", "number", "boolean", "object", "array", "null"


def _req(path: str, *types: str, choices: Any = None) -> Field:
    return Field(path, types, True, frozenset(choices) if choices else None)


def _opt(path: str, *types: str, choices: Any = None) -> Field:
    return Field(path, types, False, frozenset(choices) if choices else None)


_ID = (_req("event_id", _S), _opt("client_event_id", _S, _NULL))
_SESSION = (_req("session", _O), _req("session.id", _S), _req("session.expires_at", _I),
            _req("session.model", _S))
_SPAN = (_req("start_ms", _I), _req("end_ms", _I))
_DELTA = _ID + _SPAN + (_req("delta", _S),)
_USAGE = (_req("usage", _O), _req("usage.seconds", _N))

_SERVER_FIELDS: dict[str, tuple[Field, ...]] = {
    "session.started": _ID + _SESSION,
    "session.updated": _ID + _SESSION,
    "session.input_audio.muted": _ID,
    "session.input_audio.unmuted": _ID,
    "session.output_audio.fixture.playing": _ID,
    "session.output_audio.fixture.played": _ID,
    "session.instructions.appended": _ID + _SPAN,
    "session.thinking.appended": _ID + _SPAN,
    "session.commentary.appended": _ID + _SPAN,
    # reflected to a sideband: no event_id
    "session.input_audio.append": (_req("audio", _S),),
    "session.output_audio.delta": (_req("delta", _S), _opt("start_ms", _I), _opt("end_ms", _I)),
    "session.input_transcript.delta": _DELTA,
    "session.output_transcript.delta": _DELTA,
    "session.delegation.created": _ID + (
        _req("delegation", _O), _req("delegation.id", _S),
        _req("delegation.target", _S, choices=("client", "responses", "decisions")),
        _req("offset_ms", _I)),
    "decision.event": _ID + (_req("event", _O),),
    "decision.item.created": _ID + (_req("item", _O),),
    "decision.item.deleted": _ID + (_req("item_id", _S),),
    "response.event": _ID + (_req("event", _O), _opt("delegation_id", _S, _NULL)),
    "session.usage.updated": _ID + _USAGE,
    "session.closed": _ID + _SESSION + _USAGE + (_req("reason", _S, choices=CLOSE_REASONS),),
    "error": _ID + (_req("error", _O), _req("error.code", _S), _req("error.message", _S),
                    _req("error.type", _S), _opt("error.client_event_id", _S, _NULL)),
    "info": _ID + (_req("code", _S), _req("message", _S)),
    "transport.dtmf.received": _ID + (_req("event", _S),),
    "transport.dtmf.send": _ID + (_req("event", _S),),
    "transport.dtmf.sent": _ID + (_req("event", _S),),
    "transport.ringing": _ID + (_req("session_id", _S),),
    "transport.answered": _ID + (_req("session_id", _S),),
    "transport.failed": _ID + (_req("session_id", _S), _req("error", _O)),
}

_APPENDED = (_req("content", _S), _opt("delegation_id", _S, _NULL))
_CLIENT_FIELDS: dict[str, tuple[Field, ...]] = {
    "session.start": (_req("session", _O), _req("session.model", _S),
                      _opt("session.input", _A), _opt("session.instructions", _S)),
    "session.update": (_req("session", _O),),
    "session.input_audio.append": (_req("audio", _S),),
    "session.input_audio.mute": (),
    "session.input_audio.unmute": (),
    "session.output_audio.fixture.play": (_req("audio", _S),),
    "session.instructions.append": _APPENDED,
    "session.thinking.append": _APPENDED,
    "session.commentary.append": _APPENDED,
    "decision.create": (_req("event_id", _S),),
    "decision.item.create": (_req("item", _O),),
    "decision.item.delete": (_req("item_id", _S),),
    "response.item.create": (_req("item", _O),),
    "response.create": (),
    "session.close": (),
}

SERVER_TYPES = frozenset(_SERVER_FIELDS)
CLIENT_TYPES = frozenset(_CLIENT_FIELDS)
_SERVER = {t: _compile(f) for t, f in _SERVER_FIELDS.items()}
_CLIENT = {t: _compile(f + (_opt("event_id", _S),)) for t, f in _CLIENT_FIELDS.items()}


def parse_server_event(data: str | bytes | bytearray, *, max_size: int) -> dict[str, Any]:
    """One Live server frame -> the checked event dict; raises :class:`ProtocolError`."""
    event = decode_frame(data, max_size=max_size)
    event_type = event["type"]
    checks = _SERVER.get(event_type)
    if checks is None:
        raise ProtocolError("unknown_event_type",
                            f"unknown Live server event type {excerpt(event_type, 80)!r}",
                            detail={"type": excerpt(event_type)})
    check_fields(event, event_type, checks)
    return event


def validate_client_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` itself if it is a well-formed Live client event (local ProtocolError if not)."""
    event_type = event.get("type") if isinstance(event, dict) else None
    if not isinstance(event_type, str):
        raise ProtocolError("invalid_client_event", "a Live client event is a dict with a string 'type'",
                            detail={"field": "type"}, local=True)
    checks = _CLIENT.get(event_type)
    if checks is None:
        raise ProtocolError(
            "invalid_client_event",
            f"{excerpt(event_type, 80)}: not a Live client event; known: " + ", ".join(sorted(_CLIENT)),
            detail={"type": excerpt(event_type), "field": "type"}, local=True)
    check_fields(event, event_type, checks, local=True)
    if event_type == "session.input_audio.append" and len(event["audio"]) > MAX_APPEND_AUDIO:
        raise ProtocolError("invalid_client_event",
                            f"{event_type}: audio is longer than {MAX_APPEND_AUDIO} characters",
                            detail={"type": event_type, "field": "audio"}, local=True)
    return event
