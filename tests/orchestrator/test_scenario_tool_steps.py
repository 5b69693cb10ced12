"""The ``expect_tool_call`` / ``answer_tool_call`` steps: loading (short and long forms, errors
with file, line and field), the way back to YAML, and runs against the embedded server that
pass, and that fail with a clear reason."""

import json
import textwrap
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.scenario import ScenarioError, dump_scenario_text, load_scenario, load_scenario_text
from orchestrator.scenario.steps import AnswerToolCall, ExpectToolCall
from orchestrator.scenario.tool_calls import mismatch, output_text

ROOT = Path(__file__).resolve().parents[2]

HEAD = """\
name: t
session:
  output_modalities: [text]
  turn_detection: null
  extra:
    tools:
      - {type: function, name: get_weather, parameters: {type: object, properties: {city: {type: string},
         days: {type: integer}}, required: [city]}}
      - {type: function, name: get_time}
populations:
  - {name: p, script: s, sessions: 2}
"""


def scenario_text(steps: str, thresholds: str = "") -> str:
    text = HEAD + "scripts:\n  s:\n" + textwrap.indent(textwrap.dedent(steps), "    ")
    return text + (("thresholds:\n" + textwrap.indent(textwrap.dedent(thresholds), "  ")) if thresholds else "")


def load_error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "scenarios/x.yaml")
    return info.value


def test_short_and_long_forms_load_and_dump_back_equal():
    scenario = load_scenario_text(scenario_text("""\
        - say: call get_weather city=Rome
        - expect_tool_call: get_weather
        - expect_tool_call: {name: get_weather, arguments: {city: Rome, days: 2}, timeout: 5s}
        - expect_tool_call
        - answer_tool_call: 'Sun in $city'
        - answer_tool_call: {output: {temp: 21, tags: [a]}, respond: false}
        - answer_tool_call:
            output: 42
          wait: false
        """, "- tool.call p95 < 500ms\n- tool.calls_failed == 0\n- tool.calls >= 2\n"))
    steps = scenario.scripts["s"]
    assert steps[1] == ExpectToolCall(name="get_weather")
    assert steps[2] == ExpectToolCall(name="get_weather", arguments={"city": "Rome", "days": 2}, timeout=5.0)
    assert steps[3] == ExpectToolCall()
    assert steps[4] == AnswerToolCall(output="Sun in $city")
    assert steps[5] == AnswerToolCall(output={"temp": 21, "tags": ["a"]}, respond=False)
    assert steps[6] == AnswerToolCall(output=42, wait=False)
    assert load_scenario_text(dump_scenario_text(scenario), "again.yaml") == scenario


@pytest.mark.parametrize(
    ("steps", "line", "field", "words"),
    [
        ("- expect_tool_call: {name: 3}\n", 14, "scripts.s[0].expect_tool_call.name", "expected a string"),
        ("- expect_tool_call: {name: ''}\n", 14, "scripts.s[0].expect_tool_call.name", "function name"),
        ("- expect_tool_call: {arguments: [city]}\n", 14, "scripts.s[0].expect_tool_call.arguments",
         "expected a mapping"),
        ("- expect_tool_call: {timeout: soon}\n", 14, "scripts.s[0].expect_tool_call.timeout", "soon"),
        ("- say: hi\n- answer_tool_call: 'costs $5'\n", 15, "scripts.s[1].answer_tool_call", "$$"),
        ("- answer_tool_call\n", 14, "scripts.s[0]", "output"),
        ("- answer_tool_call: {temp: 21}\n", 14, "scripts.s[0].answer_tool_call.temp", "unknown key"),
        ("- answer_tool_call: {output: 1, respond: maybe}\n", 14, "scripts.s[0].answer_tool_call.respond",
         "true or false"),
        ("- expect_tool_cal: get_weather\n", 14, "scripts.s[0].expect_tool_cal", "expect_tool_call"),
    ],
)
def test_bad_steps_name_file_line_and_field(steps, line, field, words):
    error = load_error(scenario_text(steps))
    assert (error.file, error.line, error.field) == ("scenarios/x.yaml", line, field), str(error)
    assert words in error.message


def test_tool_call_threshold_needs_a_statistic():
    error = load_error(scenario_text("- say: hi\n", "- tool.call < 1s\n"))
    assert error.field == "thresholds[0]" and "histogram" in error.message


def test_checks_and_templates():
    call = {"name": "get_weather", "call_id": "c1", "arguments": '{"city": "Rome", "days": 2}'}
    assert mismatch(call, "get_weather", {"city": "Rome", "days": 2}) is None
    assert "expected a call of 'get_time'" in mismatch(call, "get_time", {})
    assert "days=2, expected 3" in mismatch(call, None, {"days": 3})
    assert "without argument 'unit'" in mismatch(call, None, {"unit": "C"})
    assert "not a JSON object" in mismatch(call | {"arguments": "[1]"}, None, {})
    assert output_text("$name($city, ${days}d) $call_id $$", call) == "get_weather(Rome, 2d) c1 $"
    assert json.loads(output_text({"ok": True}, call)) == {"ok": True}
    with pytest.raises(KeyError):
        output_text("$unit", call)


def run(tmp_path: Path, text: str) -> tuple[int, dict]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    code = main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    return code, json.loads((tmp_path / "out" / "results.json").read_text())


def test_example_tool_calls_scenario_passes(tmp_path):
    code = main(["run", str(ROOT / "scenarios" / "tool-calls.yaml"), "--quiet", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert code == 0, results["thresholds"]
    counters = results["summary"]["counters"]
    assert counters["tool.calls"] == 10 and counters["tool.calls_failed"] == 0
    assert results["summary"]["histograms"]["tool.call"]["count"] == 10


def test_a_wrong_call_fails_the_session_with_the_reason(tmp_path, capsys):
    code, results = run(tmp_path, scenario_text("""\
        - say: please get_time
        - expect_tool_call: get_weather
        - say: never reached
        """, "- tool.calls_failed == 0\n"))
    assert code == 1
    counters = results["summary"]["counters"]
    assert counters["tool.calls_failed"] == 2 and counters["tool.calls"] == 2 and counters["errors"] >= 2
    assert results["sessions"]["failed"] == 2
    assert "expected a call of 'get_weather', got 'get_time'" in capsys.readouterr().out


def test_no_call_within_the_timeout_and_a_template_the_call_cannot_fill(tmp_path, capsys):
    code, results = run(tmp_path, scenario_text("""\
        - say: hello
        - expect_tool_call: {timeout: 200ms}
        """, "- errors == 0\n"))
    assert code == 1 and results["summary"]["counters"]["tool.calls_failed"] == 2
    assert "no function call came within 0.2s" in capsys.readouterr().out
    code, results = run(tmp_path, scenario_text("""\
        - say: get_weather city=Rome
        - answer_tool_call: 'Sun in $town'
        """, "- errors == 0\n"))
    assert code == 1 and results["sessions"]["failed"] == 2
    assert "$town" in capsys.readouterr().out


def test_answer_without_expect_answers_the_next_call_and_respond_false_sends_no_response(tmp_path):
    code, results = run(tmp_path, scenario_text("""\
        - say: get_weather city=Rome days=4
        - answer_tool_call: {output: 'Rain in $city for $days days', respond: false}
        - say: get_time
        - answer_tool_call: {output: {hour: 12}}
        """, "- turns.completed == 6\n- tool.calls == 4\n- errors == 0\n"))
    assert code == 0, results["thresholds"]
