"""Usage, cost and budgets (issue 17 items 1-3): usage in results.json equals the usage the
server reported, exactly; a budget below a scenario's estimate stops the run within about one
turn's cost of it (exit 4, a spend curve and a budget mark in the report); the estimate of
``validate --estimate`` is within 20% of the measured spend; hosted runs need a budget; a
model with no price has an unknown cost, never 0; bad budgets name file, line and field."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import trio

from orchestrator.cli import main
from orchestrator.scenario import ScenarioError, load_scenario, load_scenario_text
from orchestrator.scenario.estimate import estimate_scenario
from orchestrator.scenario.runner import run_scenario
from orchestrator.usage import TOKEN_FIELDS, usage_counts
from standin import EmbeddedServer

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "scenarios" / "audio" / "hello.wav"

MIXED = f"""\
name: mixed
session:
  instructions: Answer in one short sentence.
  output_modalities: [audio]
  turn_detection: {{type: server_vad, silence_duration_ms: 400}}
populations:
  - {{name: talkers, script: talk, sessions: 4}}
scripts:
  talk:
    - repeat: 2
      steps:
        - say: tell me about the weather today
        - play: {HELLO}
          realtime: false
        - wait_response: 10s
"""


async def test_usage_in_results_equals_the_servers_usage_exactly(nursery, monkeypatch):
    server = EmbeddedServer.with_generated_key()
    url = await nursery.start(server.serve)
    monkeypatch.setenv("RTFLEET_TEST_KEY", server.api_key)
    text = MIXED.replace("populations:", f"target: {{url: '{url}', api_key_env: RTFLEET_TEST_KEY}}\npopulations:")
    result = await run_scenario(load_scenario_text(text, "mixed.yaml"))
    usage = result.results["usage"]
    served: dict[str, int] = {}
    for record in server.connections:
        for response in record.session.responses if record.session else ():
            for name, amount in usage_counts(response.get("usage")).items():
                served[name] = served.get(name, 0) + amount
    assert result.results["summary"]["counters"]["turns.completed"] == 16
    assert {name: usage["tokens"][name.split(".", 1)[1]] for name in TOKEN_FIELDS} == {
        name: served.get(name, 0) for name in TOKEN_FIELDS}
    assert usage["tokens"]["input_audio_tokens"] > 0 and usage["tokens"]["cached_text_tokens"] > 0
    assert usage["cost_known"] and usage["cost_usd"] > 0
    # the per-population figures add up to the run's
    [population] = result.results["populations"].values()
    assert population["summary"]["counters"]["cost.usd"] == pytest.approx(usage["cost_usd"], abs=1e-6)


def test_a_budget_below_the_estimate_stops_the_run_within_one_turn_of_it(tmp_path, capsys):
    budget = 0.01
    text = textwrap.dedent(f"""\
        name: capped
        session: {{output_modalities: [audio], turn_detection: null}}
        budget: {{max_cost: {budget} USD}}
        populations:
          - {{name: a, script: s, sessions: 8}}
        scripts:
          s:
            - repeat: 20
              steps:
                - say: tell me about the weather in town today
        """)
    path = tmp_path / "capped.yaml"
    path.write_text(text)
    estimate = estimate_scenario(load_scenario(path)).cost
    assert estimate is not None and estimate > 5 * budget
    code = main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    assert code == 4
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    usage = results["usage"]
    per_turn = usage["cost_per_turn_usd"]
    assert results["verdict"] == "budget" and usage["budget"]["reached"]
    assert budget - 2 * per_turn <= usage["cost_usd"] <= budget + per_turn, (usage["cost_usd"], per_turn)
    assert results["sessions"]["failed"] == 0 and results["sessions"]["stopped"] == 8
    [mark] = [m for m in results["marks"] if m["kind"] == "budget"]
    assert "max_cost 0.01 USD" in mark["label"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'data-plot="spend"' in html and "budget reached" in html
    assert "BUDGET" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["smoke", "tool-calls", "transcription"])
def test_the_estimate_is_within_20_percent_of_the_measured_spend(tmp_path, name):
    path = ROOT / "scenarios" / f"{name}.yaml"
    estimate = estimate_scenario(load_scenario(path)).cost
    assert main(["run", str(path), "--quiet", "--out", str(tmp_path)]) == 0
    measured = json.loads((tmp_path / "results.json").read_text())["usage"]["cost_usd"]
    assert measured > 0 and abs(estimate - measured) <= 0.2 * measured, (estimate, measured)


def test_validate_estimate_prints_the_cost_and_the_assumptions(capsys):
    assert main(["validate", str(ROOT / "scenarios" / "ramp-websocket.yaml"), "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "texters: realtime gpt-realtime" in out and "total: $" in out
    assert "assumes answers as long as the embedded model's" in out


def test_a_hosted_target_needs_a_budget(tmp_path, capsys):
    code = main(["run", str(ROOT / "scenarios" / "smoke.yaml"), "--target", "https://api.openai.com"])
    assert code == 2
    assert "needs a budget" in capsys.readouterr().err


def test_a_model_with_no_price_has_an_unknown_cost_never_zero(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""\
        name: unpriced
        session: {model: my-own-realtime, output_modalities: [text], turn_detection: null}
        populations: [{name: a, script: s, sessions: 1}]
        scripts: {s: [{say: hi}]}
        """))
    assert main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "no price for model 'my-own-realtime'" in captured.err
    assert "cost unknown (no price for my-own-realtime)" in captured.out
    usage = json.loads((tmp_path / "out" / "results.json").read_text())["usage"]
    assert usage["cost_usd"] is None and not usage["cost_known"] and usage["tokens"]["output_text_tokens"] > 0
    # a price given in the scenario makes it known
    path.write_text(path.read_text() + "prices:\n  my-own-realtime: {text_input: 1, text_output: 2}\n")
    assert main(["run", str(path), "--quiet", "--out", str(tmp_path / "out2")]) == 0
    assert json.loads((tmp_path / "out2" / "results.json").read_text())["usage"]["cost_usd"] > 0


@pytest.mark.parametrize(("budget", "field", "words"), [
    ("{max_cost: 20 EUR}", "budget.max_cost", "USD"),
    ("{max_cost: -1}", "budget.max_cost", "> 0"),
    ("{max_session_minutes: soon}", "budget.max_session_minutes", "number"),
    ("{}", "budget", "max_cost"),
])
def test_bad_budgets_name_file_line_and_field(budget, field, words):
    text = f"name: t\nbudget: {budget}\npopulations: [{{name: a, script: s, sessions: 1}}]\nscripts: {{s: [{{say: hi}}]}}\n"
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "x.yaml")
    assert (info.value.file, info.value.line, info.value.field) == ("x.yaml", 2, field)
    assert words in info.value.message
