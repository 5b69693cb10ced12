"""Realtime events (GA shape): schemas as data, parsing, validation and encoding.

Every server and client event type rtfleet understands has one row in a table
(:data:`SERVER_SCHEMAS`, :data:`CLIENT_SCHEMAS`) listing the fields that matter and their JSON
types.  Fields not listed are always allowed and passed through untouched, so a server that
adds fields does not break us; a server that drops a field we rely on does, loudly.

Parsing happens once per frame, in two steps that can be used separately:

* :func:`decode_frame`: the frame is text, not too large, JSON, an object with a string
  ``type``;
* :func:`check_server_event`: the type is known and the required fields have the right
  JSON types.

:func:`parse_server_event` does both.  Failures raise :class:`ProtocolError` with
``local=False`` (the peer's fault); see :mod:`actors.proto.errors` for the codes.  Outgoing
events go through :func:`validate_client_event` (``local=True`` errors: our fault) and
:func:`encode_client_event`.

JSON types are checked exactly: ``true`` is not an integer, ``1.0`` is a number but not an
integer.  Nested fields are written with one dot (``"response.id"``) and are checked only
when their parent object is present.
"""

from __future__ import annotations

import json
import json.encoder as _json_encoder
from base64 import b64encode as _b64encode
from collections.abc import Mapping
from typing import Any

import attrs

from actors.proto.errors import ProtocolError, excerpt

__all__ = [
    "Field",
    "SERVER_SCHEMAS",
    "CLIENT_SCHEMAS",
    "CLIENT_ITEM_SCHEMAS",
    "MAX_APPEND_AUDIO",
    "decode_frame",
    "check_server_event",
    "parse_server_event",
    "validate_client_event",
    "Base64Text",
    "append_json",
    "encode_client_event",
    "ErrorInfo",
    "SessionInfo",
]

#: Largest ``input_audio_buffer.append`` ``audio`` string the service accepts (15 MiB).
MAX_APPEND_AUDIO = 15 * 2**20

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}
_MISSING: Any = object()


@attrs.frozen
class Field:
    """One field of an event schema: dotted ``path``, allowed JSON ``types``, and optionally
    the allowed ``choices`` of its value."""

    path: str
    types: tuple[str, ...]
    required: bool = True
    choices: frozenset[Any] | None = None

    def expected(self) -> str:
        return " or ".join(self.types)


def _req(path: str, *types: str, choices: Any = None) -> Field:
    return Field(path, types, True, frozenset(choices) if choices else None)


def _opt(path: str, *types: str, choices: Any = None) -> Field:
    return Field(path, types, False, frozenset(choices) if choices else None)


# A compiled field: (key, subkey or None, exact types, isinstance types, allows bool,
# required, choices, field).  Parents come before their children.
_Check = tuple[str, "str | None", frozenset, tuple, bool, bool, "frozenset | None", Field]


def _compile(fields: tuple[Field, ...]) -> tuple[_Check, ...]:
    compiled = []
    for f in sorted(fields, key=lambda f: f.path.count(".")):
        key, _, sub = f.path.partition(".")
        if "." in sub:
            raise ValueError(f"schema field {f.path!r}: only one level of nesting is supported")
        py = tuple(t for name in f.types for t in _PY_TYPES[name])
        compiled.append(
            (key, sub or None, frozenset(py), py, bool in py, f.required, f.choices, f)
        )
    return tuple(compiled)


def _json_type(value: Any) -> str:
    if value is _MISSING:
        return "missing"
    if isinstance(value, bool):
        return "boolean"
    for name in ("string", "integer", "number", "object", "array", "null"):
        if isinstance(value, _PY_TYPES[name]):
            return name
    return type(value).__name__


def _find_fault(event: Mapping[str, Any], checks: tuple[_Check, ...]) -> tuple[Field, Any] | None:
    """The first field of ``checks`` that ``event`` violates, with the offending value."""
    for key, sub, exact, py, allows_bool, required, choices, f in checks:
        value = event.get(key, _MISSING)
        if sub is not None:
            if type(value) is not dict:
                continue  # parent absent (optional) or already reported
            value = value.get(sub, _MISSING)
        if value is _MISSING:
            if required:
                return f, value
            continue
        if type(value) not in exact and (
            not isinstance(value, py) or (isinstance(value, bool) and not allows_bool)
        ):
            return f, value
        if choices is not None and value not in choices:
            return f, value
    return None


def _fault_detail(event_type: str, f: Field, value: Any) -> dict[str, Any]:
    detail: dict[str, Any] = {"type": event_type, "field": f.path, "expected": f.expected()}
    got = _json_type(value)
    if f.choices is not None and got in f.types:
        detail["expected"] = "one of " + ", ".join(sorted(map(str, f.choices)))
        detail["got"] = excerpt(str(value), 60)
    else:
        detail["got"] = got
    return detail


# -- server events ------------------------------------------------------------------------

_S, _I, _N, _B, _O, _A, _NULL = "string", "integer", "number", "boolean", "object", "array", "null"

_ITEM = (_req("item", _O), _req("item.id", _S), _req("item.type", _S))
_ITEM_EVENT = _ITEM + (_opt("previous_item_id", _S, _NULL),)
_RESPONSE = (
    _req("response", _O),
    _req("response.id", _S),
    _opt("response.status", _S),
    _opt("response.output", _A),
    _opt("response.conversation_id", _S, _NULL),
)
_PART = (_req("response_id", _S), _req("item_id", _S), _req("content_index", _I))
_SESSION = (_req("session", _O), _opt("session.id", _S), _opt("session.expires_at", _I))

_SERVER_FIELDS: dict[str, tuple[Field, ...]] = {
    "error": (
        _req("error", _O),
        _req("error.message", _S),
        _opt("error.type", _S),
        _opt("error.code", _S, _NULL),
        _opt("error.param", _S, _NULL),
        _opt("error.event_id", _S, _NULL),
    ),
    "session.created": _SESSION,
    "session.updated": _SESSION,
    "conversation.created": (_req("conversation", _O),),
    "conversation.item.added": _ITEM_EVENT,
    "conversation.item.done": _ITEM_EVENT,
    "conversation.item.created": _ITEM_EVENT,
    "conversation.item.retrieved": _ITEM,
    "conversation.item.deleted": (_req("item_id", _S),),
    "conversation.item.truncated": (
        _req("item_id", _S), _req("content_index", _I), _req("audio_end_ms", _I),
    ),
    "conversation.item.input_audio_transcription.delta": (
        _req("item_id", _S), _opt("content_index", _I), _opt("delta", _S),
    ),
    "conversation.item.input_audio_transcription.completed": (
        _req("item_id", _S), _req("content_index", _I), _req("transcript", _S),
    ),
    "conversation.item.input_audio_transcription.failed": (_req("item_id", _S), _req("error", _O)),
    "conversation.item.input_audio_transcription.segment": (_req("item_id", _S), _req("text", _S)),
    "input_audio_buffer.speech_started": (_req("item_id", _S), _req("audio_start_ms", _I)),
    "input_audio_buffer.speech_stopped": (_req("item_id", _S), _req("audio_end_ms", _I)),
    "input_audio_buffer.committed": (_req("item_id", _S), _opt("previous_item_id", _S, _NULL)),
    "input_audio_buffer.cleared": (),
    "input_audio_buffer.timeout_triggered": (
        _req("item_id", _S), _req("audio_start_ms", _I), _req("audio_end_ms", _I),
    ),
    "input_audio_buffer.dtmf_event_received": (_req("event", _S), _req("received_at", _N)),
    "output_audio_buffer.started": (_req("response_id", _S),),
    "output_audio_buffer.stopped": (_req("response_id", _S),),
    "output_audio_buffer.cleared": (_req("response_id", _S),),
    "response.created": _RESPONSE,
    "response.done": _RESPONSE,
    "response.output_item.added": (_req("response_id", _S), _req("output_index", _I)) + _ITEM,
    "response.output_item.done": (_req("response_id", _S), _req("output_index", _I)) + _ITEM,
    "response.content_part.added": _PART + (_req("part", _O),),
    "response.content_part.done": _PART + (_req("part", _O),),
    "response.output_text.delta": _PART + (_req("delta", _S),),
    "response.output_text.done": _PART + (_req("text", _S),),
    "response.output_audio.delta": _PART + (_req("delta", _S),),
    "response.output_audio.done": _PART,
    "response.output_audio_transcript.delta": _PART + (_req("delta", _S),),
    "response.output_audio_transcript.done": _PART + (_req("transcript", _S),),
    "response.function_call_arguments.delta": (
        _req("response_id", _S), _req("item_id", _S), _req("call_id", _S), _req("delta", _S),
    ),
    "response.function_call_arguments.done": (
        _req("response_id", _S), _req("item_id", _S), _req("call_id", _S),
        _req("name", _S), _req("arguments", _S),
    ),
    "rate_limits.updated": (_req("rate_limits", _A),),
}

# -- client events ------------------------------------------------------------------------

_CLIENT_FIELDS: dict[str, tuple[Field, ...]] = {
    "session.update": (
        _req("session", _O),
        _req("session.type", _S, choices={"realtime", "transcription"}),
    ),
    "input_audio_buffer.append": (_req("audio", _S),),
    "input_audio_buffer.commit": (),
    "input_audio_buffer.clear": (),
    "output_audio_buffer.clear": (),
    "conversation.item.create": (
        _req("item", _O),
        _req(
            "item.type",
            _S,
            choices={"message", "function_call", "function_call_output", "mcp_approval_response"},
        ),
        _opt("item.id", _S),
        _opt("previous_item_id", _S),
    ),
    "conversation.item.retrieve": (_req("item_id", _S),),
    "conversation.item.delete": (_req("item_id", _S),),
    "conversation.item.truncate": (
        _req("item_id", _S), _req("content_index", _I), _req("audio_end_ms", _I),
    ),
    "response.create": (
        _opt("response", _O),
        _opt("response.conversation", _S),
        _opt("response.instructions", _S),
        _opt("response.input", _A),
        _opt("response.output_modalities", _A),
        _opt("response.tools", _A),
        _opt("response.metadata", _O, _NULL),
    ),
    "response.cancel": (_opt("response_id", _S),),
}

#: Extra checks for ``conversation.item.create``, by ``item.type``.
_CLIENT_ITEM_FIELDS: dict[str, tuple[Field, ...]] = {
    "message": (
        _req("item.role", _S, choices={"user", "assistant", "system"}),
        _req("item.content", _A),
    ),
    "function_call": (_req("item.name", _S), _req("item.arguments", _S), _opt("item.call_id", _S)),
    "function_call_output": (_req("item.call_id", _S), _req("item.output", _S)),
    "mcp_approval_response": (),
}

#: Schemas as data: event type -> the fields that matter.  Read-only views.
SERVER_SCHEMAS: Mapping[str, tuple[Field, ...]] = _SERVER_FIELDS
CLIENT_SCHEMAS: Mapping[str, tuple[Field, ...]] = _CLIENT_FIELDS
CLIENT_ITEM_SCHEMAS: Mapping[str, tuple[Field, ...]] = _CLIENT_ITEM_FIELDS

_SERVER = {t: _compile(f) for t, f in _SERVER_FIELDS.items()}
_CLIENT = {t: _compile(f + (_opt("event_id", _S),)) for t, f in _CLIENT_FIELDS.items()}
_CLIENT_ITEM = {t: _compile(f) for t, f in _CLIENT_ITEM_FIELDS.items()}
_CONTENT_PART = _compile((_req("type", _S), _opt("text", _S), _opt("transcript", _S, _NULL)))


# -- parsing ------------------------------------------------------------------------------


#: json's own scanner (C): a value at an index -> (value, end); what json.loads runs after its
#: checks for a BOM and the whitespace around the value
_scan_once = json.JSONDecoder().scan_once


def _loads(text: str) -> Any:
    """``json.loads(text)``: the scanner straight away when the text is one value with nothing
    around it (every server event), else ``json.loads`` itself (whitespace, a BOM, extra data,
    malformed text: its result or its exact error). Same value either way."""
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def decode_frame(data: str | bytes | bytearray, *, max_size: int = 16 * 2**20) -> dict[str, Any]:
    """The JSON object in one text frame, with a string ``type``; nothing else is checked.

    ``max_size`` bounds ``len(data)`` (characters of a text frame: a frame never has fewer
    bytes than characters, so this is never stricter than a byte limit).
    """
    if not isinstance(data, str):
        if isinstance(data, (bytes, bytearray, memoryview)):
            raise ProtocolError(
                "binary_frame",
                "received a binary frame; realtime events are JSON text frames",
                detail={"size": len(data)},
            )
        raise TypeError(f"decode_frame() needs str, not {type(data).__name__}")
    if len(data) > max_size:
        raise ProtocolError(
            "oversized_frame",
            f"frame of {len(data)} characters exceeds the {max_size} limit",
            detail={"size": len(data), "max_size": max_size},
        )
    try:
        event = _loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError; absurd nesting
        pos = getattr(exc, "pos", None)
        raise ProtocolError(
            "malformed_json",
            f"frame is not valid JSON: {getattr(exc, 'msg', str(exc))}",
            detail={"position": pos, "excerpt": excerpt(data)},
        ) from exc
    if type(event) is not dict:
        raise ProtocolError(
            "not_an_object",
            f"frame is JSON {_json_type(event)}, not an object",
            detail={"excerpt": excerpt(data)},
        )
    event_type = event.get("type")
    if type(event_type) is not str:
        raise ProtocolError(
            "missing_type",
            "event has no string 'type'",
            detail={"got": _json_type(event.get("type", _MISSING)), "keys": sorted(event)[:20]},
        )
    return event


def check_server_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` itself if its type is known and its required fields are well typed."""
    event_type = event["type"]
    checks = _SERVER.get(event_type)
    if checks is None:
        raise ProtocolError(
            "unknown_event_type",
            f"unknown server event type {excerpt(event_type, 80)!r}",
            detail={"type": excerpt(event_type)},
        )
    if checks:
        check_fields(event, event_type, checks)
    return event


def check_fields(event: Mapping[str, Any], event_type: str, checks: tuple[_Check, ...], *,
                 local: bool = False) -> None:
    """Raise :class:`ProtocolError` naming the first field of ``checks`` that ``event``
    violates: ``invalid_field`` for a peer's event, ``invalid_client_event`` (``local``) for
    ours. Shared by every dialect's tables."""
    fault = _find_fault(event, checks)
    if fault is not None:
        f, value = fault
        detail = _fault_detail(event_type, f, value)
        raise ProtocolError(
            "invalid_client_event" if local else "invalid_field",
            f"{event_type}: field {f.path!r} must be {detail['expected']}, got {detail['got']}",
            detail=detail, local=local,
        )


def parse_server_event(
    data: str | bytes | bytearray, *, max_size: int = 16 * 2**20
) -> dict[str, Any]:
    """Decode and check one server frame (JSON parsed once); raises :class:`ProtocolError`."""
    return check_server_event(decode_frame(data, max_size=max_size))


# -- client events ------------------------------------------------------------------------


def _client_error(event_type: str, field: str, message: str, **detail: Any) -> ProtocolError:
    return ProtocolError(
        "invalid_client_event",
        f"{event_type}: {message}",
        detail={"type": event_type, "field": field, **detail},
        local=True,
    )


def _client_fault(event_type: str, fault: tuple[Field, Any], prefix: str = "") -> ProtocolError:
    f, value = fault
    detail = _fault_detail(event_type, f, value)
    path = prefix + f.path
    detail.pop("type")
    detail.pop("field")
    return _client_error(
        event_type, path, f"field {path!r} must be {detail['expected']}, got {detail['got']}",
        **detail,
    )


def validate_client_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` itself if it is a well-formed GA client event, else a local
    :class:`ProtocolError` (``invalid_client_event``) whose detail names the field."""
    if not isinstance(event, dict):
        raise ProtocolError(
            "invalid_client_event",
            f"a client event is a dict, not {type(event).__name__}",
            detail={"field": None},
            local=True,
        )
    event_type = event.get("type")
    if not isinstance(event_type, str):
        raise _client_error("?", "type", "client event has no string 'type'")
    checks = _CLIENT.get(event_type)
    if checks is None:
        raise _client_error(
            excerpt(event_type, 80),
            "type",
            "unknown client event type; known: " + ", ".join(sorted(_CLIENT)),
        )
    fault = _find_fault(event, checks)
    if fault is not None:
        raise _client_fault(event_type, fault)
    if event_type == "input_audio_buffer.append":
        if len(event["audio"]) > MAX_APPEND_AUDIO:
            raise _client_error(
                event_type, "audio", f"audio is longer than {MAX_APPEND_AUDIO} characters",
                size=len(event["audio"]),
            )
    elif event_type == "conversation.item.create":
        item = event["item"]
        fault = _find_fault(event, _CLIENT_ITEM[item["type"]])
        if fault is not None:
            raise _client_fault(event_type, fault)
        if item["type"] == "message":
            for index, part in enumerate(item["content"]):
                if type(part) is not dict:
                    raise _client_error(
                        event_type, f"item.content.{index}",
                        f"content part {index} must be an object, got {_json_type(part)}",
                    )
                fault = _find_fault(part, _CONTENT_PART)
                if fault is not None:
                    raise _client_fault(event_type, fault, prefix=f"item.content.{index}.")
    return event


_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_encode_str = _json_encoder.encode_basestring  # the C escaper json uses for ensure_ascii=False


class Base64Text(str):
    """A ``str`` known to hold only base64 characters (nothing JSON escapes): audio encoded
    by rtfleet itself (:meth:`of`). :func:`encode_client_event` writes it without scanning."""

    __slots__ = ()

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview) -> Base64Text:
        return cls(_b64encode(data).decode("ascii"))


#: the base64 alphabet (standard and URL-safe, with padding): nothing in it needs escaping
_BASE64_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_"


#: an append as the client core stamps it
_APPEND_KEYS = ("type", "audio", "event_id")
#: encoded keys (``"name":``) of the events written so far (a bounded cache)
_KEYS: dict[str, str] = {}


def _encode_flat(event: dict[str, Any]) -> str:
    """An event whose values are all strings; raises TypeError for anything else. A long value
    in the base64 alphabet (audio) is checked for it, which is cheaper than the escaper's scan,
    and written as it is; a :class:`Base64Text` is not even checked."""
    parts = []
    for key, value in event.items():
        name = _KEYS.get(key)
        if name is None:
            name = _encode_str(key) + ":"
            if len(_KEYS) < 512:
                _KEYS[key] = name
        kind = type(value)
        if kind is Base64Text or (kind is str and len(value) > 256 and value.isascii() and
                                  not value.encode("ascii").translate(None, _BASE64_BYTES)):
            parts.append(name + '"' + value + '"')
        elif kind is str:
            parts.append(name + _encode_str(value))
        else:
            raise TypeError(kind)
    return "{" + ",".join(parts) + "}"


_APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":"'
_APPEND_MID = b'","event_id":'
#: audio texts found to be base64 lately (text -> its bytes): a load test's sessions stream the
#: same audio (files replayed, one turn repeated), and a text seen before skips the scan
_BASE64_SEEN: dict[str, bytes] = {}
#: what the store holds at most, texts and their bytes (counted as 2 bytes a character); it is
#: emptied when it would pass it
BASE64_SEEN_LIMIT = 4 * 2**20
_base64_seen_size = 0


def _base64_bytes(audio: str) -> bytes | None:
    """``audio``'s ASCII bytes if every character is in the base64 alphabet (nothing JSON
    escapes), else None. A :class:`Base64Text` is not scanned."""
    global _base64_seen_size
    if type(audio) is Base64Text:
        return audio.encode("ascii")
    data = _BASE64_SEEN.get(audio)
    if data is not None:
        return data
    if not audio.isascii():
        return None
    data = audio.encode("ascii")
    if data.translate(None, _BASE64_BYTES):
        return None
    size = 2 * len(data)  # the text kept as the key, and its bytes
    if _base64_seen_size + size > BASE64_SEEN_LIMIT:
        _BASE64_SEEN.clear()
        _base64_seen_size = 0
    _BASE64_SEEN[audio] = data
    _base64_seen_size += size
    return data


def append_json(audio: str, event_id: str) -> bytes | None:
    """The UTF-8 text :func:`encode_client_event` writes for the stamped append
    ``{"type": "input_audio_buffer.append", "audio": audio, "event_id": event_id}`` (those keys
    in that order), built as bytes around the audio's own; None when ``audio`` is not base64
    text (then encode the event). The audio clock's frame: no dict walked, no str built and
    encoded again, and audio seen lately (or :class:`Base64Text`) is not scanned again."""
    if type(audio) is str:
        data = _BASE64_SEEN.get(audio) or _base64_bytes(audio)  # seen lately: no scan
    elif type(audio) is Base64Text:
        data = audio.encode("ascii")
    else:
        return None
    if data is None or type(event_id) is not str:
        return None
    try:
        quoted = _encode_str(event_id).encode()
    except UnicodeEncodeError:  # a lone surrogate: not UTF-8 text at all
        return None
    return b"".join((_APPEND_HEAD, data, _APPEND_MID, quoted, b"}"))


def encode_client_event(event: dict[str, Any]) -> str:
    """Compact JSON text for one client event (UTF-8 kept as is, no spaces).

    Hot path: an event whose values are all strings (every ``input_audio_buffer.append``) is
    written directly, key by key with json's own C string escaper (the same text as
    ``json.dumps``, without building an encoder per call; a :class:`Base64Text` value, or a
    long one in the base64 alphabet, is written as it is); anything else goes through one
    cached compact encoder.
    """
    if type(event) is dict:
        if tuple(event) == _APPEND_KEYS and event["type"] == "input_audio_buffer.append":
            audio = event["audio"]
            if type(audio) is Base64Text or (type(audio) is str and audio.isascii() and
                                             not audio.encode("ascii").translate(None, _BASE64_BYTES)):
                try:  # the hottest event of all: one template
                    return '{"type":"input_audio_buffer.append","audio":"' + audio + \
                        '","event_id":' + _encode_str(event["event_id"]) + "}"
                except TypeError:
                    pass
        try:
            return _encode_flat(event)
        except TypeError:
            pass  # a non-string key or value: the general encoder below
    try:
        return _encode_json(event)
    except (TypeError, ValueError) as exc:
        event_type = event.get("type") if isinstance(event, dict) else None
        raise ProtocolError(
            "invalid_client_event",
            f"{event_type}: cannot encode as JSON: {excerpt(str(exc), 120)}",
            detail={"type": event_type, "field": None},
            local=True,
        ) from exc


# -- typed views ----------------------------------------------------------------------------


@attrs.frozen
class ErrorInfo:
    """The ``error`` object of a server ``error`` event."""

    type: str
    code: str | None
    message: str
    param: str | None
    event_id: str | None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> ErrorInfo:
        error = event["error"]
        return cls(
            type=error.get("type") or "unknown",
            code=error.get("code"),
            message=error["message"],
            param=error.get("param"),
            event_id=error.get("event_id"),
        )


@attrs.frozen
class SessionInfo:
    """What ``session.created`` / ``session.updated`` tell about the session."""

    id: str | None
    model: str | None
    expires_at: int | None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> SessionInfo:
        session = event["session"]
        model = session.get("model")
        return cls(
            id=session.get("id"),
            model=model if isinstance(model, str) else None,
            expires_at=session.get("expires_at"),
        )
