"""Function tools in the deterministic model, sans-I/O: the rule that picks the call, its
arguments, the GA event flow, the answer that uses the client's output, and bad input."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standin.model.events import IdFactory
from standin.model.realtime import ModelConfig, RealtimeSession
from standin.model.tools import ToolCall, plan_reply
from tests.sdk_events import validate_server_event

WEATHER = {
    "type": "function", "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
        "unit": {"type": "string", "enum": ["C", "F"]}, "lat": {"type": "number"}},
        "required": ["city", "unit"], "additionalProperties": False},
}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}

CALL_FLOW = [
    "response.created", "response.output_item.added", "conversation.item.added",
    "response.function_call_arguments.delta",  # one or more
    "response.function_call_arguments.done", "response.output_item.done", "conversation.item.done",
    "response.done", "rate_limits.updated",
]


def session_with(tools=(WEATHER, TIME), **update) -> RealtimeSession:
    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, config=ModelConfig(pace=0.0),
                                     ids=IdFactory(random.Random(5)))
    out = session.receive_event({"type": "session.update", "session": {
        "type": "realtime", "output_modalities": ["text"], "tools": list(tools), **update}}, 0.0)
    assert out[-1]["type"] == "session.updated", out
    return session


def say(session: RealtimeSession, text: str, **response) -> list[dict]:
    session.receive_event({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}, 0.0)
    event = {"type": "response.create"} | ({"response": response} if response else {})
    return session.receive_event(event, 0.0)


def collapse(kinds: list[str]) -> list[str]:
    return [k for i, k in enumerate(kinds) if not (k == "response.function_call_arguments.delta"
                                                   and i and kinds[i - 1] == k)]


def the_call(events: list[dict]) -> dict:
    (done,) = [e for e in events if e["type"] == "response.output_item.done"]
    return done["item"]


def text_of(events: list[dict]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def test_named_tool_with_key_value_arguments_full_flow():
    session = session_with()
    events = say(session, "call get_weather city=Paris days=3 metric=true lat=48.85 nonsense=1")
    assert collapse([e["type"] for e in events]) == CALL_FLOW
    item = the_call(events)
    assert item["type"] == "function_call" and item["status"] == "completed" and item["name"] == "get_weather"
    # unknown keys are dropped (additionalProperties false); a required one is filled from its enum
    assert json.loads(item["arguments"]) == {"city": "Paris", "days": 3, "metric": True, "lat": 48.85, "unit": "C"}
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert deltas == done["arguments"] == item["arguments"]
    assert done["name"] == "get_weather" and done["call_id"] == item["call_id"].strip() != ""
    added = next(e for e in events if e["type"] == "response.output_item.added")["item"]
    assert added["status"] == "in_progress" and added["arguments"] == ""
    response = next(e for e in events if e["type"] == "response.done")["response"]
    assert response["status"] == "completed" and response["output"] == [item]
    assert not any(e["type"].startswith("response.output_text") for e in events)
    assert session.items[-1] == item  # the call is in the conversation
    for event in events:
        validate_server_event(event)


def test_answer_uses_the_function_call_output():
    session = session_with()
    item = the_call(say(session, "what is get_weather saying? city=Oslo"))
    session.receive_event({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": item["call_id"], "output": '{"temp": -3}'}}, 0.0)
    answer = session.receive_event({"type": "response.create"}, 0.0)
    assert text_of(answer) == 'get_weather returned {"temp": -3}'
    assert [i["type"] for i in session.items] == ["message", "function_call", "function_call_output", "message"]
    # a new user turn that names no tool gets the plain answer again
    assert text_of(say(session, "thanks")) == "You said: thanks"


def test_auto_calls_nothing_unless_named_and_none_never_calls():
    assert text_of(say(session_with(), "hello there")) == "You said: hello there"
    session = session_with(tool_choice="none")
    assert text_of(say(session, "call get_weather city=Rome")) == "You said: call get_weather city=Rome"
    # the name must be a whole word: get_weather_x names nothing
    assert text_of(say(session_with(), "get_weather_x please")) == "You said: get_weather_x please"


def test_required_calls_the_first_tool_and_a_named_choice_forces_its_tool():
    assert the_call(say(session_with(tool_choice="required"), "hi"))["name"] == "get_weather"
    named = session_with(tool_choice={"type": "function", "name": "get_time"})
    assert the_call(say(named, "call get_weather city=X"))["name"] == "get_time"
    # response.create overrides the session's tools and tool_choice
    session = session_with()
    events = say(session, "nothing named", tools=[TIME], tool_choice="required")
    assert the_call(events)["name"] == "get_time"
    assert text_of(say(session, "get_time please", tool_choice="none")) == "You said: get_time please"


def test_first_named_tool_in_the_text_wins_and_open_schemas_take_any_key():
    open_tool = {"type": "function", "name": "lookup"}  # no parameters at all
    session = session_with(tools=[WEATHER, open_tool])
    item = the_call(say(session, 'please lookup then get_weather q="two words" n=5'))
    assert item["name"] == "lookup" and json.loads(item["arguments"]) == {"q": "two words", "n": "5"}


def test_required_defaults_and_type_fills():
    tool = {"type": "function", "name": "book", "parameters": {"type": "object", "properties": {
        "room": {"type": "string", "default": "A1"}, "n": {"type": "integer"}, "x": {"type": "number"},
        "ok": {"type": "boolean"}, "tags": {"type": "array"}, "meta": {"type": "object"}, "who": {}},
        "required": ["room", "n", "x", "ok", "tags", "meta", "who", "unknown"]}}
    reply = plan_reply([{"id": "u", "type": "message", "role": "user",
                         "content": [{"type": "input_text", "text": "book n=two"}]}], [tool], "auto", {})
    assert isinstance(reply, ToolCall)
    assert json.loads(reply.arguments) == {"n": "two", "room": "A1", "x": 1, "ok": True, "tags": [], "meta": {},
                                           "who": "example", "unknown": "example"}


def test_audio_turns_are_heard_as_their_length_so_only_required_calls():
    context = [{"id": "a", "type": "message", "role": "user", "content": [{"type": "input_audio"}]}]
    heard = {"a": "audio of 800 ms"}
    assert plan_reply(context, [WEATHER], "auto", heard) == "You said: audio of 800 ms"
    call = plan_reply(context, [WEATHER], "required", heard)
    assert isinstance(call, ToolCall) and call.name == "get_weather"


def test_a_cancelled_call_is_incomplete():
    session = session_with()
    session.receive_event({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "get_time"}]}}, 0.0)
    # start the response without running its steps (they are all due at once otherwise)
    session._on_response_create({"type": "response.create"}, 0.0, [])
    cancelled = session.receive_event({"type": "response.cancel"}, 0.0)
    kinds = [e["type"] for e in cancelled]
    assert kinds[0] == "response.created" and "response.function_call_arguments.done" in kinds
    assert "response.function_call_arguments.delta" not in kinds
    assert the_call(cancelled)["status"] == "incomplete"
    assert next(e for e in cancelled if e["type"] == "response.done")["response"]["status"] == "cancelled"
    for event in cancelled:
        validate_server_event(event)


def test_output_without_matching_call_is_still_answered():
    session = session_with()
    session.receive_event({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "nope", "output": "42"}}, 0.0)
    assert text_of(session.receive_event({"type": "response.create"}, 0.0)) == "the tool returned 42"


@pytest.mark.parametrize(
    ("session_fields", "param"),
    [
        ({"tools": {"name": "x"}}, "session.tools"),
        ({"tools": ["x"]}, "session.tools[0]"),
        ({"tools": [{"type": "web_search"}]}, "session.tools[0].type"),
        ({"tools": [{"type": "function"}]}, "session.tools[0].name"),
        ({"tools": [{"type": "function", "name": "has space"}]}, "session.tools[0].name"),
        ({"tools": [TIME, TIME]}, "session.tools[1].name"),
        ({"tools": [{"type": "function", "name": "f", "parameters": "{}"}]}, "session.tools[0].parameters"),
        ({"tool_choice": "sometimes"}, "session.tool_choice"),
        ({"tool_choice": {"type": "function", "name": "missing"}}, "session.tool_choice.name"),
        ({"tool_choice": {"type": "function"}}, "session.tool_choice"),
    ],
)
def test_bad_tools_and_tool_choice_are_error_events_and_change_nothing(session_fields, param):
    session = session_with()
    before = json.loads(json.dumps(session.session))
    (event,) = session.receive_event({"type": "session.update", "event_id": "evt_1",
                                      "session": {"type": "realtime", **session_fields}}, 0.0)
    assert event["type"] == "error" and event["error"]["param"] == param and event["error"]["event_id"] == "evt_1"
    assert session.session == before
    assert the_call(say(session, "get_time"))["name"] == "get_time"  # still works


def test_bad_response_tools_are_error_events():
    session = session_with()
    (event,) = say(session, "get_time", tools="nope")
    assert event["type"] == "error" and event["error"]["param"] == "response.tools"
    (event,) = say(session, "get_time", tool_choice={"type": "function", "name": "get_weather"}, tools=[TIME])
    assert event["type"] == "error" and event["error"]["param"] == "response.tool_choice.name"
    assert not session._runs  # nothing started


def test_mcp_tools_are_kept_but_never_called():
    mcp = {"type": "mcp", "server_label": "x", "server_url": "https://example.invalid"}
    session = session_with(tools=[mcp], tool_choice="required")
    assert session.session["tools"] == [mcp]
    assert text_of(say(session, "hello")) == "You said: hello"


def test_idle_timeout_triggers_commits_silence_and_answers():
    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, config=ModelConfig(pace=0.0),
                                     ids=IdFactory(random.Random(2)))
    session.receive_event({"type": "session.update", "session": {
        "type": "realtime", "output_modalities": ["text"],
        "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}}}}}, 0.0)
    assert session.get_timer() is None  # armed only after a response
    say(session, "hi")
    assert session.get_timer() == pytest.approx(5.0)
    assert session.handle_timer(4.999) == []
    out = session.handle_timer(5.0)
    kinds = [e["type"] for e in out]
    assert kinds[:4] == ["input_audio_buffer.timeout_triggered", "input_audio_buffer.committed",
                         "conversation.item.added", "conversation.item.done"]
    trig = out[0]
    for event in out:
        validate_server_event(event)
    assert trig["item_id"] == out[1]["item_id"] and trig["audio_start_ms"] == trig["audio_end_ms"] == 0
    assert kinds[-2:] == ["response.done", "rate_limits.updated"]
    assert text_of(out) == "You said: audio of 0 ms"
    # the answer re-arms it; speech or a new response disarms it
    assert session.get_timer() == pytest.approx(10.0)
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad"}}}}}, 6.0)
    assert session.handle_timer(10.0) == []  # the timeout was switched off meanwhile


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["function", "mcp", "object", "string",
                                                                       "integer", "city", "get_time", "auto"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "name", "parameters", "properties", "required", "enum", "default", "city"]),
        inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tools=_json, choice=_json, text=st.text(max_size=40), override=st.booleans())
def test_any_tools_and_choice_give_events_or_error_events_never_a_crash(tools, choice, text, override):
    session = session_with(tools=[WEATHER, TIME])
    fields = {"tools": tools, "tool_choice": choice}
    out = session.receive_event({"type": "session.update", "session": {"type": "realtime", **fields}}, 0.0)
    assert [e["type"] for e in out] in (["session.updated"], ["error"])
    response = fields if override else {}
    out = say(session, text + " get_weather city=Rome", **response)
    for event in out:
        validate_server_event(event)
    kinds = [e["type"] for e in out]
    assert kinds == ["error"] or kinds[-2:] == ["response.done", "rate_limits.updated"]
