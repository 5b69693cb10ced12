from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.proto.mirror import SessionMirror
from actors.proto.realtime.events import check_server_event, validate_client_event


def user(item_id: str, text: str = "hi") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "user", "status": "completed",
            "object": "realtime.item", "content": [{"type": "input_text", "text": text}]}


def audio_user(item_id: str, transcript: str | None = None) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_audio", "transcript": transcript}]}


def assistant(item_id: str, status: str = "completed", **part: Any) -> dict[str, Any]:
    content = [{"type": "output_audio", **part}] if part else []
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": content}


def added(item: dict[str, Any], previous: str | None = None, kind: str = "added") -> dict[str, Any]:
    return check_server_event({"type": f"conversation.item.{kind}", "item": item,
                               "previous_item_id": previous})


def feed(mirror: SessionMirror, *events: dict[str, Any]) -> None:
    for event in events:
        mirror.apply_server(check_server_event(event))


def test_ordering_by_previous_item_id() -> None:
    m = SessionMirror()
    feed(m, added(user("a")), added(user("c"), "a"), added(user("b"), "a"),
         added(user("z"), "root"), added(user("q"), "unknown"), added(user("n"), None))
    assert m.ids == ["z", "a", "b", "c", "q", "n"]
    feed(m, added(user("b", "changed"), "c", kind="done"))  # an update keeps its place
    assert m.ids == ["z", "a", "b", "c", "q", "n"]
    assert m.item("b")["content"][0]["text"] == "changed"
    feed(m, {"type": "conversation.item.deleted", "item_id": "a"},
         {"type": "conversation.item.deleted", "item_id": "nope"})
    assert m.ids == ["z", "b", "c", "q", "n"] and len(m) == 5
    assert [i["id"] for i in m.items()] == m.ids


@settings(deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=30))
def test_ordering_matches_a_list_model(steps: list[tuple[bool, int]]) -> None:
    """Insert after a random existing item (or at root / the end), delete sometimes."""
    m, model = SessionMirror(), []
    for n, (delete, pick) in enumerate(steps):
        if delete and model:
            victim = model.pop(pick % len(model))
            feed(m, {"type": "conversation.item.deleted", "item_id": victim})
            continue
        choice = pick % (len(model) + 2)
        if choice == len(model):
            previous, index = "root", 0
        elif choice == len(model) + 1:
            previous, index = None, len(model)
        else:
            previous, index = model[choice], choice + 1
        model.insert(index, f"i{n}")
        feed(m, added(user(f"i{n}"), previous))
        assert m.ids == model


def test_truncate_drops_audio_beyond_the_mark_and_keeps_the_transcript() -> None:
    m = SessionMirror(output_bytes_per_ms=8)
    audio = base64.b64encode(bytes(range(200))).decode()
    item = assistant("a1", audio=audio, transcript="hello there")
    event = added(item)
    original = copy.deepcopy(event)
    feed(m, event, {"type": "conversation.item.truncated", "item_id": "a1", "content_index": 0,
                    "audio_end_ms": 10})
    part = m.item("a1")["content"][0]
    assert base64.b64decode(part["audio"]) == bytes(range(80))
    assert part["transcript"] == "hello there"
    assert event == original  # the received event was not mutated
    before = m.item("a1")
    feed(m, {"type": "conversation.item.truncated", "item_id": "a1", "content_index": 0,
             "audio_end_ms": 1000})
    assert m.item("a1") is before  # nothing beyond the mark: unchanged
    for bad in ({"item_id": "nope", "content_index": 0}, {"item_id": "a1", "content_index": 5}):
        feed(m, {"type": "conversation.item.truncated", "audio_end_ms": 0, **bad})
    assert m.item("a1") is before
    [replay] = m.replay_events()
    assert replay["item"]["content"] == [{"type": "output_text", "text": "hello there"}]


def test_truncate_with_undecodable_audio_drops_it() -> None:
    m = SessionMirror()
    feed(m, added(assistant("a1", audio="!!!", transcript="t")),
         {"type": "conversation.item.truncated", "item_id": "a1", "content_index": 0,
          "audio_end_ms": 1})
    assert m.item("a1")["content"][0] == {"type": "output_audio", "transcript": "t"}


def test_transcripts_overlay_items_in_any_order() -> None:
    m = SessionMirror()
    completed = {"type": "conversation.item.input_audio_transcription.completed",
                 "item_id": "u1", "content_index": 0, "transcript": "said this"}
    feed(m, completed, added(audio_user("u1")), added(audio_user("u1"), kind="done"))
    assert m.text("u1") == "said this"
    feed(m, added(audio_user("u2")))
    assert m.text("u2") is None
    events = m.replay_events()
    assert [e["item"]["content"] for e in events] == [[{"type": "input_text", "text": "said this"}]]
    assert m.last_skipped == 1  # u2 has no transcript yet


def test_assistant_text_and_transcript_from_done_events() -> None:
    m = SessionMirror()
    base = {"response_id": "r1", "item_id": "a1", "output_index": 0, "content_index": 0}
    feed(m, added(assistant("a1", "in_progress")),
         {"type": "response.output_audio_transcript.done", **base, "transcript": "spoken"},
         {"type": "response.output_text.done", **base, "item_id": "a2", "text": "written"})
    assert m.text("a1") == "spoken" and m.text("a2") == "written"


def test_active_response_and_atomic_responses() -> None:
    m = SessionMirror()
    feed(m, added(user("u1")),
         {"type": "response.created", "response": {"id": "r1", "conversation_id": "conv"}})
    assert m.active_response_id == "r1"
    out = {"type": "response.output_item.added", "response_id": "r1", "output_index": 0,
           "item": assistant("a1", "in_progress")}
    feed(m, out, added(assistant("a1", "in_progress"), "u1"),
         {**out, "type": "response.output_item.done", "item": assistant("a1", transcript="x")})
    assert m.ids == ["u1", "a1"]
    assert m.connection_lost() == "r1"
    assert m.ids == ["u1"] and m.discarded == 1 and m.active_response_id is None
    assert m.connection_lost() is None

    feed(m, {"type": "response.created", "response": {"id": "r2"}},
         {**out, "type": "response.output_item.done", "response_id": "r2",
          "item": assistant("a2", transcript="y")},
         {"type": "response.done", "response": {"id": "r2", "status": "completed"}})
    assert m.active_response_id is None
    assert m.connection_lost() is None
    assert m.ids == ["u1", "a2"]  # a finished response is kept


def test_out_of_band_responses_are_not_conversation_state() -> None:
    m = SessionMirror()
    feed(m, {"type": "response.created", "response": {"id": "oob", "conversation_id": None}},
         {"type": "response.output_item.done", "response_id": "oob", "output_index": 0,
          "item": assistant("x", transcript="classified")})
    assert m.ids == [] and m.active_response_id is None
    feed(m, {"type": "response.done", "response": {"id": "oob"}})
    assert m.connection_lost() is None


def test_replay_events() -> None:
    m = SessionMirror()
    call = {"id": "f1", "type": "function_call", "call_id": "c1", "name": "lookup",
            "arguments": '{"q": 1}', "status": "completed", "object": "realtime.item"}
    output = {"id": "f2", "type": "function_call_output", "call_id": "c1", "output": "42"}
    image = {"id": "u3", "type": "message", "role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        {"type": "input_text", "text": ""}]}
    system = {"id": "s1", "type": "message", "role": "system",
              "content": [{"type": "input_text", "text": "rules"}]}
    feed(m, added(system), added(user("u1", "hello"), "s1"),
         added(audio_user("u2", "spoken"), "u1"),
         added(assistant("a1", transcript="reply"), "u2"), added(call, "a1"), added(output, "f1"),
         added(assistant("a2", "in_progress", transcript="partial"), "f2"),
         added(audio_user("u4"), "a2"), added(image, "u4"),
         added({"id": "m1", "type": "mcp_call", "name": "x"}, "u3"))
    events = m.replay_events()
    assert [e["previous_item_id"] for e in events] == ["root", "s1", "u1", "u2", "a1", "f1", "f2"]
    assert [e["item"]["id"] for e in events] == ["s1", "u1", "u2", "a1", "f1", "f2", "u3"]
    items = {e["item"]["id"]: e["item"] for e in events}
    assert items["u2"]["content"] == [{"type": "input_text", "text": "spoken"}]
    assert items["a1"] == {"id": "a1", "type": "message", "role": "assistant",
                           "content": [{"type": "output_text", "text": "reply"}]}
    assert items["f1"] == {k: v for k, v in call.items() if k not in ("status", "object")}
    assert items["f2"] == output
    assert items["u3"]["content"] == [image["content"][0]]
    assert m.last_skipped == 3  # in-progress assistant, audio without transcript, mcp item
    for event in events:
        validate_client_event(event)
        assert "status" not in event["item"] and "object" not in event["item"]


def test_replay_is_valid_for_the_official_sdk() -> None:
    pydantic = pytest.importorskip("pydantic")
    types = pytest.importorskip("openai.types.realtime")
    adapter = pydantic.TypeAdapter(types.RealtimeClientEventParam)
    m = SessionMirror()
    feed(m, added(user("u1")), added(audio_user("u2", "t"), "u1"),
         added(assistant("a1", transcript="r"), "u2"),
         added({"id": "f1", "type": "function_call", "call_id": "c", "name": "n",
                "arguments": "{}"}, "a1"))
    for event in m.replay_events():
        adapter.validate_python(json.loads(json.dumps(event)))
