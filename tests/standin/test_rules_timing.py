"""The rules model's timing (standin/model/timing.py: time to first audio, words per second,
tool-decision delay; seeded draws) and its per-``instructions`` rules: parsing and errors with
file:line:field, the draws, and the delays as a client sees them over loopback on the mock clock."""

from __future__ import annotations

import json
import random
import statistics

import pytest
import trio

from standin import EmbeddedServer
from standin.model.events import IdFactory
from standin.model.live import LiveSession
from standin.model.realtime import ModelConfig, RealtimeSession
from standin.model.rules import RulesError, parse_rules
from standin.model.timing import DEFAULT_TIMING, Dist
from standin.model.tools import ToolCall, plan_reply
from standin.testing import open_client

WEATHER = {"type": "function", "name": "get_weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}

TIMED = """\
rules:
  - when: /weather in (?P<city>[a-z]+)/
    call: {name: get_weather, args: {city: $city}}
    then: "It is $output in $city."
  - keywords: [book, table]
    say: "Booked."
    timing: {first_audio: 2s}
timing:
  first_audio: 700ms
  words_per_second: 2
  tool_decision: 1.5s
"""


def _user(text: str) -> dict:
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}


def test_timing_fields_parse_as_fixed_log_normal_or_uniform_and_a_rule_overrides_its_own():
    rules = parse_rules("""\
rules:
  - keywords: [hi]
    say: hello
    timing: {words_per_second: {min: 2, max: 3}}
  - keywords: [bye]
    say: bye
timing:
  first_audio: {median: 400ms, p90: 1s, max: 2s}
  tool_decision: .25
  seed: 9
""", "r.yaml")
    assert rules.timing.first_audio == Dist.lognormal(0.4, 1.0, 0.0, 2.0)
    assert rules.timing.tool_decision == Dist.fixed(0.25)
    assert rules.timing.words_per_second == DEFAULT_TIMING.words_per_second  # not given: the default
    assert rules.timing.seed == 9
    own = rules.timing_of(rules.rules[0])
    assert own.words_per_second == Dist(2.0, 3.0) and own.first_audio == rules.timing.first_audio
    assert rules.timing_of(rules.rules[1]) is rules.timing and rules.timing_of(None) is rules.timing


def test_draws_are_seeded_per_session_and_follow_the_distribution():
    text = "rules:\n  - keywords: [hi]\n    say: hello\ntiming: {seed: 3}\n"
    one, two = parse_rules(text), parse_rules(text)
    first = [one.timing.session_rng().random() for _ in range(3)]
    assert first == [two.timing.session_rng().random() for _ in range(3)]  # same seed, same order
    assert len(set(first)) == 3  # each session its own generator
    other = parse_rules(text.replace("seed: 3", "seed: 4")).timing.session_rng().random()
    assert other != first[0]
    rng = random.Random(1)
    dist = DEFAULT_TIMING.first_audio
    draws = sorted(dist.draw(rng) for _ in range(4000))
    assert statistics.median(draws) == pytest.approx(0.5, rel=0.05)
    assert draws[int(0.9 * len(draws))] == pytest.approx(0.9, rel=0.06)
    assert 0.2 <= draws[0] and draws[-1] <= 3.0
    uniform = [Dist(1.0, 2.0).draw(rng) for _ in range(1000)]
    assert 1.0 <= min(uniform) < 1.1 and 1.9 < max(uniform) <= 2.0


@pytest.mark.parametrize("text, message", [
    ("timing: {first_audio: fast}", "r.yaml:3:23: timing.first_audio: expected a duration"),
    ("timing: {first_audio: 120s}", "r.yaml:3:23: timing.first_audio: must be within 0..60s"),
    ("timing: {first_audio: {median: 1s}}", "r.yaml:3:23: timing.first_audio: a log-normal distribution needs both"),
    ("timing: {first_audio: {median: 1s, p90: 500ms}}", "r.yaml:3:41: timing.first_audio.p90: must be above the median"),
    ("timing: {first_audio: {min: 1s}}", "r.yaml:3:23: timing.first_audio: expected a value, {median, p90}"),
    ("timing: {first_audio: {min: 2s, max: 1s}}", "r.yaml:3:38: timing.first_audio.max: must not be below min"),
    ("timing: {words_per_second: 2s}", "r.yaml:3:28: timing.words_per_second: expected a number"),
    ("timing: {words_per_second: 0}", "r.yaml:3:28: timing.words_per_second: must be within 0.5..10"),
    ("timing: {seed: x}", "r.yaml:3:16: timing.seed: expected a whole number"),
    ("timing: {latency: 1s}", "r.yaml:3:10: timing: unknown key 'latency'"),
    ("timing: 1s", "r.yaml:3:9: timing: expected a mapping"),
])
def test_bad_timing_names_file_line_and_field(text, message):
    with pytest.raises(RulesError) as caught:
        parse_rules("rules:\n  - {keywords: [hi], say: hello}\n" + text, "r.yaml")
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("rule, message", [
    ("{keywords: [hi], say: x, timing: {seed: 1}}", "r.yaml:2:39: rules[0].timing: unknown key 'seed'"),
    ("{keywords: [hi], say: x, timing: {tool_decision: soon}}", "r.yaml:2:54: rules[0].timing.tool_decision: expected"),
    ("{keywords: [hi], say: x, instructions: /a(/}", "r.yaml:2:44: rules[0].instructions: not a valid regular"),
    ("{keywords: [hi], say: x, instructions: ''}", "r.yaml:2:44: rules[0].instructions: expected a non-empty string"),
])
def test_bad_rule_timing_and_instructions_name_file_line_and_field(rule, message):
    with pytest.raises(RulesError) as caught:
        parse_rules(f"rules:\n  - {rule}\n", "r.yaml")
    assert str(caught.value).startswith(message)


def test_a_rule_with_instructions_answers_only_sessions_whose_instructions_match():
    rules = parse_rules("""\
rules:
  - keywords: [table]
    instructions: /restaurant|booking/
    say: "Your table is booked."
  - keywords: [table]
    instructions: furniture shop
    say: "Our tables are on the first floor."
default: "Sorry?"
""")
    user = [{"id": "u", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "a table"}]}]
    assert plan_reply(user, [], "auto", {}, rules, "You take Booking requests.") == "Your table is booked."
    assert plan_reply(user, [], "auto", {}, rules, "You work in a FURNITURE SHOP.") == \
        "Our tables are on the first floor."
    assert plan_reply(user, [], "auto", {}, rules, "You are a weather bot.") == "Sorry?"
    assert plan_reply(user, [], "auto", {}, rules) == "Sorry?"
    # in the model: the session's instructions, as session.update sets them
    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, config=ModelConfig(rules=rules, pace=0))
    said = []
    for instructions in ("You take restaurant bookings.", "You sell garden furniture in a furniture shop."):
        session.receive_event({"type": "session.update", "session": {
            "type": "realtime", "instructions": instructions, "output_modalities": ["text"]}}, 0.0)
        session.receive_event(_user("a table please"), 0.0)
        done = [e for e in session.receive_event({"type": "response.create"}, 0.0) + session.handle_timer(5.0)
                if e["type"] == "response.output_text.done"]
        said += [e["text"] for e in done]
    assert said == ["Your table is booked.", "Our tables are on the first floor."]
    # GPT-Live: session.start's instructions
    for instructions, answer in (("You take restaurant bookings.", "Your table is booked."),
                                 ("A furniture shop assistant.", "Our tables are on the first floor.")):
        live = LiveSession(ModelConfig(rules=rules, pace=0), IdFactory(), 0.0)
        live.receive_text(json.dumps({"type": "session.start", "session": {
            "model": "gpt-live-1", "instructions": instructions}}), 0.0)
        events = live.receive_text('{"type": "session.commentary.append", "content": "a table"}', 0.0)
        events += live.handle_timer(10.0)
        assert "".join(e["delta"] for e in events if e["type"] == "session.output_transcript.delta") == answer


def test_the_call_after_a_matching_instructions_rule_is_answered_by_its_then():
    rules = parse_rules("""\
rules:
  - when: /weather in (?P<city>[a-z]+)/
    instructions: /forecast/
    call: {name: get_weather, args: {city: $city}}
    then: "Forecast for $city: $output."
""")
    turn = [{"id": "u", "type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "weather in Oslo"}]}]
    call = plan_reply(turn, [WEATHER], "auto", {}, rules, "You read the forecast.")
    assert call == ToolCall("get_weather", '{"city": "Oslo"}')
    after = turn + [{"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": call.arguments},
                    {"type": "function_call_output", "call_id": "c", "output": "snow"}]
    assert plan_reply(after, [WEATHER], "auto", {}, rules, "You read the forecast.") == "Forecast for Oslo: snow."
    # another agent's session: the rule is not its own, so the echo model calls nothing
    assert plan_reply(turn, [WEATHER], "auto", {}, rules, "You sell shoes.") == "You said: weather in Oslo"


@pytest.fixture
async def server(nursery):
    config = ModelConfig(rules=parse_rules(TIMED, "timed.yaml"))
    server = EmbeddedServer.with_generated_key(model_config=config)
    await nursery.start(server.serve)
    return server


async def test_the_delays_apply_over_websocket_on_the_mock_clock(server, autojump_clock):
    async with open_client(server.base_url, key=server.api_key) as client:
        await client.recv()
        await client.send({"type": "session.update", "session": {
            "type": "realtime", "tools": [WEATHER], "audio": {"input": {"turn_detection": None}}}})
        await client.recv_until("session.updated")
        await client.send(_user("what's the weather in Paris"))
        await client.recv_until("conversation.item.done")
        asked = trio.current_time()
        await client.send({"type": "response.create"})
        events = await client.recv_until("response.done")
        # the call: nothing before the tool-decision delay, then all of it at once
        assert trio.current_time() - asked == pytest.approx(1.5, abs=0.01)
        call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert call["arguments"] == '{"city": "Paris"}'
        await client.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}})
        await client.recv_until("conversation.item.done")
        asked = trio.current_time()
        await client.send({"type": "response.create"})
        created = (await client.recv_until("response.created"))[-1]
        assert trio.current_time() - asked == pytest.approx(0.0, abs=0.01)
        seen: list[tuple[float, str]] = []
        while True:
            event = await client.recv()
            if event["type"] in ("response.output_audio_transcript.delta", "response.output_audio.delta"):
                seen.append((round(trio.current_time() - asked, 3), event["type"].split(".")[1]))
            if event["type"] == "response.done":
                break
        words = [t for t, kind in seen if kind == "output_audio_transcript"]
        chunks = [t for t, kind in seen if kind == "output_audio"]
        # first audio after 700 ms; two words a second: a word every 500 ms = every 5th 100 ms chunk
        assert words == pytest.approx([0.7, 1.2, 1.7, 2.2, 2.7], abs=0.01)  # "It is sunny in Paris."
        assert len(chunks) == 25 and chunks == pytest.approx([0.7 + 0.1 * k for k in range(25)], abs=0.01)
        assert event["response"]["output"][0]["content"][0]["transcript"] == "It is sunny in Paris."
        assert event["response"]["usage"]["output_token_details"]["audio_tokens"] == 2500 // 50
        assert created["response"]["status"] == "in_progress"
        # a rule's own timing: "book a table" waits the rule's 2 s
        await client.send(_user("book a table"))
        await client.recv_until("conversation.item.done")
        asked = trio.current_time()
        await client.send({"type": "response.create"})
        await client.recv_until("response.output_audio_transcript.delta")
        assert trio.current_time() - asked == pytest.approx(2.0, abs=0.01)
        await client.recv_until("response.done")
