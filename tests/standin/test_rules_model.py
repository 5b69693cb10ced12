"""The rules model (standin/model/rules.py) through plan_reply, its file errors, and hearing
(standin/hearing.py) inside the realtime model: words it listens for, else "audio of N ms"."""

from __future__ import annotations

import base64
import importlib.util
import shutil

import pytest

from standin.model.rules import RulesError, parse_rules
from standin.model.tools import ToolCall, plan_reply

RULES = """\
rules:
  - when: /weather in (?P<city>[a-z]+)/
    call: {name: get_weather, args: {city: $city, units: metric}}
    then: "It is $output in $city."
    hear: ["What's the weather in Paris"]
  - keywords: [book, table]
    say: "Booked for $said."
default: "Sorry?"
"""
TOOLS = [{"type": "function", "name": "get_weather"}]


def _user(text: str) -> dict:
    return {"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_rules_call_a_tool_with_fields_from_the_match_then_answer_with_its_output():
    rules = parse_rules(RULES, "r.yaml")
    call = plan_reply([_user("what's the weather in Paris?")], TOOLS, "auto", {}, rules)
    assert call == ToolCall("get_weather", '{"city": "Paris", "units": "metric"}')
    context = [_user("what's the weather in Paris?"),
               {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": call.arguments},
               {"type": "function_call_output", "call_id": "c1", "output": "sunny"}]
    assert plan_reply(context, TOOLS, "auto", {}, rules) == "It is sunny in Paris."
    assert plan_reply([_user("a table, book it")], TOOLS, "auto", {}, rules) == "Booked for a table, book it."
    assert plan_reply([_user("hello")], TOOLS, "auto", {}, rules) == "Sorry?"
    # the function is not among the tools (or tool_choice is none): the rule is passed over
    assert plan_reply([_user("weather in Paris")], [], "auto", {}, rules) == "Sorry?"
    assert plan_reply([_user("weather in Paris")], TOOLS, "none", {}, rules) == "Sorry?"


@pytest.mark.parametrize("text, message", [
    ("rules: []", "r.yaml:1:8: rules: expected a non-empty list of rules"),
    ("rules:\n  - when: /a(/\n    say: x", "r.yaml:2:11: rules[0].when: not a valid regular expression"),
    ("rules:\n  - keywords: [a]\n    sey: x", "r.yaml:3:5: rules[0]: unknown key 'sey'"),
    ("rules:\n  - when: x\n    say: x\n    call: {name: f}", "r.yaml:2:5: rules[0]: a rule answers with exactly one"),
    ("rules:\n  - when: x\n    call: {name: 'a b'}", "r.yaml:3:18: rules[0].call.name: a function name"),
    ("rules:\n  - when: x\n    say: hi\n    then: y", "r.yaml:4:5: rules[0].then: 'then' is the reply after a call"),
    ("rules:\n  - say: x", "r.yaml:2:5: rules[0]: a rule needs 'when'"),
])
def test_bad_rules_files_name_file_line_and_field(text, message):
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "r.yaml")
    assert str(caught.value).startswith(message)


@pytest.mark.skipif(shutil.which("espeak-ng") is None or importlib.util.find_spec("pocketsphinx") is None,
                    reason="needs espeak-ng (apt-get install espeak-ng) and pocketsphinx (rtfleet[voice])")
@pytest.mark.parametrize("spoken, heard", [
    ("What's the weather in Paris?", "What's the weather in Paris"),
    ("Please play some music", None),  # off the rules' phrases: the echo model's words
])
def test_the_model_hears_the_phrases_its_rules_listen_for(spoken, heard):
    from actors.speech import synthesize
    from standin.model.realtime import RealtimeSession
    from standin.voice_model import rules_model_config

    config, note = rules_model_config_from_text(rules_model_config, RULES)
    assert note is None
    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, config=config)
    session.receive_event({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"turn_detection": None, "transcription": {"model": "whisper-1"}}}}}, 0.0)
    pcm = synthesize(spoken)
    session.receive_event({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}, 0.0)
    events = session.receive_event({"type": "input_audio_buffer.commit"}, 0.0)
    events += session.handle_timer(10.0)
    done = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"]
    expected = heard if heard is not None else f"audio of {round(len(pcm) / 48)} ms"
    assert [e["transcript"] for e in done] == [expected]


def rules_model_config_from_text(factory, text):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(text)
        return factory(path)


@pytest.mark.skipif(shutil.which("espeak-ng") is None or importlib.util.find_spec("pocketsphinx") is None,
                    reason="needs espeak-ng (apt-get install espeak-ng) and pocketsphinx (rtfleet[voice])")
def test_the_live_model_hears_and_answers_by_the_rules():
    import json

    from actors.speech import synthesize
    from standin.model.events import IdFactory
    from standin.model.live import LiveSession
    from standin.voice_model import rules_model_config

    config, _ = rules_model_config_from_text(rules_model_config, RULES)
    session = LiveSession(config, IdFactory(), 0.0)
    session.receive_text(json.dumps({"type": "session.start", "session": {"model": "gpt-live-1"}}), 0.0)
    events, now = [], 0.0
    for spoken in ("What's the weather in Paris?", "Please play some music"):
        pcm = synthesize(spoken) + bytes(48_000)  # a second of silence ends the utterance
        for i in range(0, len(pcm), 9600):  # 200 ms appends
            events += session.receive_text(json.dumps({"type": "session.input_audio.append",
                                                       "audio": base64.b64encode(pcm[i:i + 9600]).decode()}), now)
            now += 0.2
        events += session.handle_timer(now + 10)
        now += 10
    heard = [e["delta"] for e in events if e["type"] == "session.input_transcript.delta"]
    assert heard[0] == "What's the weather in Paris" and heard[1].startswith("audio of ")
    assert [e["type"] for e in events].count("session.delegation.created") == 1  # the rule's call
    said = "".join(e["delta"] for e in events if e["type"] == "session.output_transcript.delta")
    assert said == "Sorry?"  # the off-grammar utterance: the rules' default
