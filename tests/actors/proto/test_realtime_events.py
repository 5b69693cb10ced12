from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.proto.errors import ProtocolError
from actors.proto.realtime.events import Base64Text, CLIENT_ITEM_SCHEMAS, CLIENT_SCHEMAS, ErrorInfo, Field, MAX_APPEND_AUDIO, SERVER_SCHEMAS, SessionInfo, check_server_event, decode_frame, encode_client_event, parse_server_event, validate_client_event

SAMPLE = {"string": "x", "integer": 7, "number": 1.5, "boolean": True, "object": {}, "array": []}
CANDIDATES = [("integer", 7), ("string", "7"), ("array", []), ("object", {}), ("boolean", True)]


def wrong_value(types: tuple[str, ...]) -> Any:
    """A JSON value of none of ``types`` (an integer is also a number)."""
    for name, value in CANDIDATES:
        if name not in types and not (name == "integer" and "number" in types):
            return value
    raise AssertionError(types)


def minimal(event_type: str, fields: tuple[Field, ...]) -> dict[str, Any]:
    """The smallest event with every required field of ``fields``, built from the table."""
    event: dict[str, Any] = {"type": event_type}
    for f in sorted(fields, key=lambda f: f.path.count(".")):
        if not f.required:
            continue
        value = sorted(f.choices)[0] if f.choices else SAMPLE[f.types[0]]
        key, _, sub = f.path.partition(".")
        if sub:
            event[key] = {**event[key], sub: value}
        else:
            event[key] = value if not isinstance(value, dict) else dict(value)
    return event


def drop_field(event: dict[str, Any], path: str) -> dict[str, Any]:
    event = json.loads(json.dumps(event))
    key, _, sub = path.partition(".")
    if sub:
        del event[key][sub]
    else:
        del event[key]
    return event


def set_field(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    event = json.loads(json.dumps(event))
    key, _, sub = path.partition(".")
    if sub:
        event[key][sub] = value
    else:
        event[key] = value
    return event


def raises(code: str, data: Any, **kw: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_server_event(data, **kw)
    assert info.value.code == code
    assert info.value.local is False
    return info.value


# -- frame decoding ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b'{"type":"error"}', bytearray(b"{}")])
def test_binary_frames_are_refused(data: bytes) -> None:
    assert raises("binary_frame", data).detail == {"size": len(data)}


def test_oversized_frame() -> None:
    frame = json.dumps({"type": "input_audio_buffer.cleared", "pad": "x" * 100})
    assert parse_server_event(frame, max_size=len(frame))["type"] == "input_audio_buffer.cleared"
    error = raises("oversized_frame", frame, max_size=len(frame) - 1)
    assert error.detail == {"size": len(frame), "max_size": len(frame) - 1}


def test_malformed_json_echoes_a_short_redacted_excerpt() -> None:
    frame = '{"type": "error", "auth": "Bearer sk-secretsecret' + "x" * 500
    error = raises("malformed_json", frame)
    assert "sk-secretsecret" not in error.detail["excerpt"]
    assert len(error.detail["excerpt"]) <= 200
    assert isinstance(error.detail["position"], int)
    assert "sk-secret" not in error.message


def test_absurd_nesting_is_malformed_not_a_crash() -> None:
    raises("malformed_json", "[" * 100_000)


@pytest.mark.parametrize("frame", ["[]", "1", '"s"', "null", "true"])
def test_not_an_object(frame: str) -> None:
    raises("not_an_object", frame)


@pytest.mark.parametrize("frame", ["{}", '{"type": 1}', '{"type": null}', '{"kind": "error"}'])
def test_missing_type(frame: str) -> None:
    raises("missing_type", frame)


def test_unknown_type_names_it_truncated() -> None:
    assert raises("unknown_event_type", '{"type": "bogus.event"}').detail == {"type": "bogus.event"}
    long = "t" * 1000
    error = raises("unknown_event_type", json.dumps({"type": long}))
    assert len(error.detail["type"]) <= 200


def test_decode_frame_does_not_check_the_schema() -> None:
    assert decode_frame('{"type": "whatever"}') == {"type": "whatever"}
    with pytest.raises(TypeError):
        decode_frame(12)  # type: ignore[arg-type]


# -- server schemas ---------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(SERVER_SCHEMAS))
def test_every_server_type_accepts_its_minimal_event_and_extra_fields(event_type: str) -> None:
    event = minimal(event_type, SERVER_SCHEMAS[event_type])
    event["unexpected_extra"] = {"kept": True}
    parsed = parse_server_event(json.dumps(event))
    assert parsed == event


REQUIRED_SERVER = [
    (t, f.path) for t, fields in sorted(SERVER_SCHEMAS.items()) for f in fields if f.required
]
TYPED_SERVER = [(t, f) for t, fields in sorted(SERVER_SCHEMAS.items()) for f in fields]


@pytest.mark.parametrize(("event_type", "path"), REQUIRED_SERVER)
def test_missing_required_server_field_is_named(event_type: str, path: str) -> None:
    event = drop_field(minimal(event_type, SERVER_SCHEMAS[event_type]), path)
    error = raises("invalid_field", json.dumps(event))
    assert error.detail["type"] == event_type
    assert error.detail["field"] == path
    assert error.detail["got"] == "missing"
    assert path in error.message


@pytest.mark.parametrize(("event_type", "field"), TYPED_SERVER, ids=lambda x: getattr(x, "path", x))
def test_wrongly_typed_server_field_is_named(event_type: str, field: Field) -> None:
    event = minimal(event_type, SERVER_SCHEMAS[event_type])
    parent = field.path.partition(".")[0]
    if "." in field.path and not isinstance(event.get(parent), dict):
        event[parent] = {}
    event = set_field(event, field.path, wrong_value(field.types))
    error = raises("invalid_field", json.dumps(event))
    assert (error.detail["type"], error.detail["field"]) == (event_type, field.path)


def test_booleans_are_not_integers_and_floats_are_not_integers() -> None:
    base = {"type": "conversation.item.truncated", "item_id": "i", "content_index": 0}
    for bad in (True, 1.0, "1"):
        error = raises("invalid_field", json.dumps({**base, "audio_end_ms": bad}))
        assert error.detail["field"] == "audio_end_ms"
    assert parse_server_event(json.dumps({**base, "audio_end_ms": 5}))["audio_end_ms"] == 5


def test_nested_field_checked_only_with_its_parent() -> None:
    error = raises("invalid_field", '{"type": "response.done", "response": {"status": "x"}}')
    assert error.detail["field"] == "response.id"
    error = raises("invalid_field", '{"type": "response.done", "response": "resp_1"}')
    assert error.detail == {"type": "response.done", "field": "response", "expected": "object",
                            "got": "string"}


def test_optional_nullable_field() -> None:
    ok = {"type": "conversation.item.added", "item": {"id": "i", "type": "message"}}
    assert parse_server_event(json.dumps({**ok, "previous_item_id": None}))
    assert parse_server_event(json.dumps(ok))
    raises("invalid_field", json.dumps({**ok, "previous_item_id": 3}))


@settings(deadline=None)
@given(st.text(max_size=300))
def test_parse_only_ever_raises_protocol_errors_on_text(text: str) -> None:
    try:
        parse_server_event(text)
    except ProtocolError as exc:
        assert not exc.local


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(deadline=None)
@given(st.sampled_from(sorted(SERVER_SCHEMAS)), st.dictionaries(
    st.sampled_from(["item", "response", "item_id", "error", "session", "delta", "content_index",
                     "response_id", "text", "transcript", "audio_end_ms", "part"]), JSON))
def test_parse_of_random_fields_returns_or_raises_invalid_field(
    event_type: str, fields: dict[str, Any]
) -> None:
    frame = json.dumps({**fields, "type": event_type})
    try:
        assert parse_server_event(frame)["type"] == event_type
    except ProtocolError as exc:
        assert exc.code == "invalid_field"
        assert exc.detail["type"] == event_type


# -- client events -----------------------------------------------------------------------------


def client_minimal(event_type: str) -> dict[str, Any]:
    event = minimal(event_type, CLIENT_SCHEMAS[event_type])
    if event_type == "conversation.item.create":
        event["item"] = {"type": "message", "role": "user",
                         "content": [{"type": "input_text", "text": "hi"}]}
    return event


@pytest.mark.parametrize("event_type", sorted(CLIENT_SCHEMAS))
def test_every_client_type_validates_its_minimal_event(event_type: str) -> None:
    event = client_minimal(event_type)
    assert validate_client_event(event) is event


@pytest.mark.parametrize(
    ("event_type", "path"),
    [(t, f.path) for t, fs in sorted(CLIENT_SCHEMAS.items()) for f in fs if f.required],
)
def test_missing_required_client_field_is_named(event_type: str, path: str) -> None:
    event = drop_field(client_minimal(event_type), path)
    with pytest.raises(ProtocolError) as info:
        validate_client_event(event)
    assert info.value.code == "invalid_client_event"
    assert info.value.local is True
    assert info.value.detail["field"] == path
    assert path in info.value.message


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"type": "message", "role": "robot", "content": []}, "item.role"),
        ({"type": "message", "role": "user"}, "item.content"),
        ({"type": "message", "role": "user", "content": ["hi"]}, "item.content.0"),
        ({"type": "message", "role": "user", "content": [{"text": "hi"}]}, "item.content.0.type"),
        ({"type": "message", "role": "user", "content": [{"type": "input_text", "text": 3}]},
         "item.content.0.text"),
        ({"type": "function_call", "arguments": "{}"}, "item.name"),
        ({"type": "function_call_output", "output": "{}"}, "item.call_id"),
        ({"type": "mesage", "role": "user", "content": []}, "item.type"),
        ({"type": "message", "role": "user", "content": [], "id": 5}, "item.id"),
    ],
)
def test_item_create_checks(item: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_client_event({"type": "conversation.item.create", "item": item})
    assert info.value.detail["field"] == field


def test_client_event_misc_errors() -> None:
    cases = [
        ({"type": "nope"}, "type"),
        ({"audio": "x"}, "type"),
        ({"type": "input_audio_buffer.commit", "event_id": 3}, "event_id"),
        ({"type": "session.update", "session": {"type": "other"}}, "session.type"),
        ({"type": "input_audio_buffer.append", "audio": "A" * (MAX_APPEND_AUDIO + 1)}, "audio"),
        ({"type": "response.create", "response": {"conversation": 1}}, "response.conversation"),
    ]
    for event, field in cases:
        with pytest.raises(ProtocolError) as info:
            validate_client_event(event)
        assert info.value.local and info.value.detail["field"] == field, event
    with pytest.raises(ProtocolError):
        validate_client_event(["not", "a", "dict"])  # type: ignore[arg-type]


def test_encode_is_compact_and_keeps_unicode() -> None:
    event = {"type": "conversation.item.create", "item": {"text": "héllo ✓"}}
    text = encode_client_event(event)
    assert text == '{"type":"conversation.item.create","item":{"text":"héllo ✓"}}'
    assert json.loads(text) == event


@given(st.text(alphabet=st.sampled_from(list("AZaz09+/=-_\"\\\n\x00\x7fé ✓")), max_size=600),
       st.booleans())
def test_flat_events_encode_exactly_as_json_dumps_whatever_their_strings(audio: str, long: bool) -> None:
    # the hot path writes long base64 values without the escaper: anything else is escaped
    if long:
        audio = "QUJD" * 70 + audio
    event = {"type": "input_audio_buffer.append", "audio": audio, "event_id": "evt_c_1"}
    assert encode_client_event(event) == json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def test_base64_text_is_written_as_is_and_equals_its_str() -> None:
    audio = Base64Text.of(bytes(range(256)) * 4)
    event = {"type": "input_audio_buffer.append", "audio": audio}
    assert encode_client_event(event) == json.dumps(event, separators=(",", ":"))
    assert audio == base64.b64encode(bytes(range(256)) * 4).decode() and isinstance(audio, str)


@given(st.text(alphabet=st.sampled_from(list("AZaz09+/=-_\"\\\n\x00\x7fé ✓")), max_size=600),
       st.text(max_size=12), st.booleans(), st.booleans())
def test_append_json_is_the_encoders_text_or_none(audio: str, event_id: str, long: bool, base64_text: bool) -> None:
    """The audio clock's append bytes equal the general encoder's text of the stamped append,
    for every audio and id; they exist for all base64 audio (plain str or Base64Text), and
    again when the same audio comes back (the store of audio seen lately)."""
    from actors.proto.realtime.events import _BASE64_BYTES, append_json

    if long:
        audio = "QUJD" * 70 + audio
    is_base64 = not audio.encode("utf-8", "surrogatepass").translate(None, _BASE64_BYTES)
    base64_text = base64_text and is_base64  # what Base64Text promises
    if base64_text:
        audio = Base64Text(audio)
    event = {"type": "input_audio_buffer.append", "audio": audio, "event_id": event_id}
    for _ in range(2):  # the second time from the store, for base64 audio
        data = append_json(audio, event_id)
        if data is not None:
            assert data == encode_client_event(event).encode()
            assert json.loads(data) == event
    utf8_id = event_id.encode("utf-8", "surrogatepass") == event_id.encode("utf-8", "replace")
    assert (data is not None) == (is_base64 and utf8_id)


def test_append_json_store_is_bounded_by_bytes() -> None:
    from actors.proto.realtime import events

    events._BASE64_SEEN.clear()
    events._base64_seen_size = 0
    chunk = 960 * 4 // 3  # a 20 ms frame's base64
    for n in range(events.BASE64_SEEN_LIMIT // (2 * chunk) + 10):
        audio = f"{n:08d}".replace("0", "A") + "B" * (chunk - 8)
        assert events.append_json(audio, "evt_c_1") is not None
        assert events._base64_seen_size <= events.BASE64_SEEN_LIMIT
        assert events._base64_seen_size == 2 * sum(map(len, events._BASE64_SEEN.values()))
    assert len(events._BASE64_SEEN) < 20  # emptied once full, then filled again


def test_encode_maps_unserialisable_to_a_local_error() -> None:
    with pytest.raises(ProtocolError) as info:
        encode_client_event({"type": "response.create", "response": {"x": object()}})
    assert info.value.local and info.value.code == "invalid_client_event"
    assert isinstance(info.value.__cause__, TypeError)


# -- typed views -------------------------------------------------------------------------------


def test_error_info() -> None:
    event = parse_server_event(json.dumps({"type": "error", "error": {
        "type": "invalid_request_error", "code": "x", "message": "m", "event_id": "evt_1"}}))
    expected = ErrorInfo("invalid_request_error", "x", "m", None, "evt_1")
    assert ErrorInfo.from_event(event) == expected
    bare = check_server_event({"type": "error", "error": {"message": "m"}})
    assert ErrorInfo.from_event(bare) == ErrorInfo("unknown", None, "m", None, None)


def test_session_info() -> None:
    event = {"type": "session.created", "session": {"id": "sess_1", "model": "gpt-realtime",
                                                    "expires_at": 99}}
    expected = SessionInfo("sess_1", "gpt-realtime", 99)
    assert SessionInfo.from_event(check_server_event(event)) == expected
    assert SessionInfo.from_event({"session": {}}) == SessionInfo(None, None, None)


# -- against the official SDK's types ------------------------------------------------------------


def _sdk_union(module: str, name: str) -> dict[str, Any]:
    import typing

    mod = pytest.importorskip(module)
    union = typing.get_args(typing.get_args(getattr(mod, name))[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in union}


def test_server_table_covers_the_sdk_server_events() -> None:
    sdk = _sdk_union("openai.types.realtime.realtime_server_event", "RealtimeServerEvent")
    wanted = {t for t in sdk if not t.startswith(("mcp_list_tools.", "response.mcp_call"))}
    assert wanted <= set(SERVER_SCHEMAS)
    for event_type, fields in SERVER_SCHEMAS.items():
        model = sdk[event_type]
        for f in fields:
            if f.required and "." not in f.path:
                assert model.model_fields[f.path].is_required(), (event_type, f.path)


def test_client_table_matches_the_sdk_client_events() -> None:
    sdk = _sdk_union("openai.types.realtime.realtime_client_event", "RealtimeClientEvent")
    assert set(sdk) == set(CLIENT_SCHEMAS)
    for event_type, fields in CLIENT_SCHEMAS.items():
        for f in fields:
            if f.required and "." not in f.path:
                assert sdk[event_type].model_fields[f.path].is_required(), (event_type, f.path)
    assert set(CLIENT_ITEM_SCHEMAS) >= {"message", "function_call", "function_call_output"}


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)


@given(_JSON_VALUES, st.sampled_from(["", " ", "\n", "\ufeff", "x", "}", "{", '"']),
       st.sampled_from(["", " ", "\n\t", "x", "}", "]", ",1", '"']), st.integers(0, 12))
def test_loads_fast_path_is_json_loads(value, before: str, after: str, cut: int) -> None:
    """decode_frame's scanner-first parse gives json.loads's value, or its error, for any text:
    one value, whitespace or garbage around it, a BOM, text cut short."""
    from actors.proto.realtime.events import _loads

    text = before + json.dumps(value) + after
    for candidate in (text, text[:-cut] if cut else text):
        try:
            expected = json.loads(candidate)
        except ValueError as exc:
            with pytest.raises(type(exc)) as info:
                _loads(candidate)
            assert str(info.value) == str(exc)
        else:
            got = _loads(candidate)
            assert got == expected or (got != got and expected != expected)
