"""speak: and expect: steps: loading (short forms, errors at file:line), the round trip through
unstructure, and what expect decides on an answer (pure, no server)."""

from __future__ import annotations

import json
import textwrap

import pytest

from orchestrator.scenario import ScenarioError, load_scenario_text
from orchestrator.scenario.expect import answer_of, evaluate, implicit_check_threshold
from orchestrator.scenario.loader import dump_scenario_text
from orchestrator.scenario.steps import Expect, Speak

HEAD = textwrap.dedent("""\
    name: v
    target: embedded
    session: {model: gpt-realtime, turn_detection: null}
    populations: [{name: p, script: s, sessions: 1}]
    scripts:
      s:
""")


def _load(steps: str):
    return load_scenario_text(HEAD + textwrap.indent(textwrap.dedent(steps), "    "), "v.yaml")


def test_speak_and_expect_load_in_short_and_long_forms_and_round_trip():
    scenario = _load("""\
        - speak: "What's the weather in Paris?"
          voice: en-gb
          rate: 180
        - expect: /sunny/
        - expect: {contains: Paris, tool: {name: get_weather, args: {city: Paris}}, within: 1.5s}
    """)
    steps = scenario.scripts["s"]
    assert steps[0] == Speak("What's the weather in Paris?", voice="en-gb", rate=180)
    assert steps[1] == Expect(said="/sunny/")
    assert steps[2] == Expect(contains="Paris", tool={"name": "get_weather", "args": {"city": "Paris"}},
                              within=1.5)
    assert load_scenario_text(dump_scenario_text(scenario), "again.yaml") == scenario
    assert [str(t.source_text) for t in implicit_check_threshold(scenario)] == ["checks.failed == 0"]


@pytest.mark.parametrize("steps, where, words", [
    ("- speak: ''\n", "v.yaml:7:", "must not be empty"),
    ("- speak: hi\n  rate: 20\n", "v.yaml:8:", "must be >= 80"),
    ("- expect: {timeout: 2s}\n", "v.yaml:7:", "at least one of said, contains, tool, within"),
    ("- expect: '/a(/'\n", "v.yaml:7:", "not a valid regular expression"),
    ("- expect: {tool: {args: {}}}\n", "v.yaml:7:", "expected {name: <function>"),
])
def test_bad_speak_and_expect_steps_name_file_line_and_field(steps, where, words):
    with pytest.raises(ScenarioError) as caught:
        _load(steps)
    assert where in str(caught.value) and words in str(caught.value)


def _answer(said: str = "", calls=(), first=0.3):
    output = [{"type": "message", "content": [{"type": "output_audio", "transcript": said}]}] if said else []
    output += [{"type": "function_call", "name": n, "arguments": json.dumps(a)} for n, a in calls]
    return answer_of({"status": "completed", "output": output}, first)


def test_expect_checks_the_words_the_calls_and_the_time_to_first_output():
    answer = _answer("It is sunny in Paris.", first=0.4)
    assert [o.passed for o in evaluate(Expect(said="/SUNNY/", contains="paris", within=0.5), answer)] == \
        [True, True, True]
    failed = evaluate(Expect(said="/rain/", within=0.2), answer)
    assert [(o.check, o.passed) for o in failed] == [("said /rain/", False), ("within 0.2s", False)]
    assert failed[0].detail == "said 'It is sunny in Paris.'"
    call = _answer(calls=[("get_weather", {"city": "Paris"})], first=None)
    assert evaluate(Expect(tool={"name": "get_weather", "args": {"city": "Paris"}}), call)[0].passed
    wrong = evaluate(Expect(tool={"name": "get_weather", "args": {"city": "Rome"}}), call)[0]
    assert not wrong.passed and "city='Paris', expected 'Rome'" in wrong.detail
    none = evaluate(Expect(tool={"name": "book"}), call)[0]
    assert not none.passed and "no call of 'book'" in none.detail


@pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None,
                    reason="needs the espeak-ng program (apt-get install espeak-ng)")
def test_a_spoken_turn_ends_under_a_server_vad_that_waits_longer_than_the_default_trail(tmp_path):
    """speak's trailing silence covers the session's VAD silence: with 1.2 s the server needs
    1.2 s of quiet after the words to end the turn, more than speak's default 400 ms trail."""
    from orchestrator.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""\
        name: slow-vad
        target: embedded
        duration_limit: 40s
        session:
          model: gpt-realtime
          turn_detection: {type: server_vad, silence_duration_ms: 1200}
        populations: [{name: p, script: s, sessions: 1}]
        scripts:
          s:
            - speak: "Book a table for two"
              rate: 300
            - wait_response: {timeout: 10s}
        thresholds:
          - turns.completed == 1
    """))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "-q"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["summary"]["counters"]["turns.completed"] == 1
