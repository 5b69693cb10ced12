"""Thresholds are checked against the metrics a run records (`metric_names`), at load time,
and a misspelt key is reported as such before any structural complaint its absence causes."""

import textwrap

import pytest

from orchestrator.scenario import ScenarioError, load_scenario_text
from orchestrator.scenario.metric_names import DECLARED, KNOWN, metric_kind, threshold_problem
from orchestrator.scenario.runmetrics import OTEL_COUNTERS, OTEL_HISTOGRAMS


def _load(text):
    return load_scenario_text(textwrap.dedent(text), "s.yaml")


BASE = """\
name: x
populations:
  - {name: p, script: s, sessions: 2}
scripts:
  s:
    - say: hi
"""


def test_an_unknown_threshold_metric_is_an_error_with_file_line_field_and_a_suggestion():
    text = BASE + "thresholds:\n  - errors == 0\n  - turn.time_to_first_byte p95 < 500ms\n"
    with pytest.raises(ScenarioError) as info:
        _load(text)
    assert str(info.value) == (
        "s.yaml:9:5: thresholds[1]: unknown metric 'turn.time_to_first_byte', "
        "did you mean 'turn.time_to_first_text'?")


def test_a_statistic_the_metric_does_not_have_is_an_error():
    with pytest.raises(ScenarioError) as info:
        _load(BASE + "thresholds: ['errors p95 < 3']\n")
    assert info.value.field == "thresholds[0]"
    assert "p95 applies to histograms; 'errors' is a counter" in info.value.message
    with pytest.raises(ScenarioError, match="is a histogram; give a statistic"):
        _load(BASE + "thresholds: ['turn.duration < 3s']\n")


def test_known_metrics_and_families_load():
    s = _load(BASE + "thresholds: ['turn.time_to_first_text p95 < 800ms', 'errors == 0',\n"
              "  'server_errors.rate_limited == 0', 'turns.barge_in_missed == 0',\n"
              "  'reconnect.success_rate == 1', 'turns.completed rate > 1']\n")
    assert len(s.thresholds) == 6


def test_a_far_off_name_lists_what_is_known():
    problem = threshold_problem("zzz", None)
    assert problem.startswith("unknown metric 'zzz' (known: ")
    assert "turn.time_to_first_audio" in problem and "server_errors.<name>" in problem


def test_misspelt_sessions_is_an_unknown_key_on_its_own_line():
    text = """\
    name: x
    populations:
      - name: p
        script: s
        sesions: 20
    scripts:
      s: [say: hi]
    """
    with pytest.raises(ScenarioError) as info:
        _load(text)
    e = info.value
    assert (e.line, e.field) == (5, "populations[0].sesions")
    assert e.message == "unknown key 'sesions'; did you mean 'sessions'?"
    assert len(e.errors) == 1  # not also "a population needs phases or sessions"


def test_the_catalogue_names_what_the_runner_declares_and_exports():
    for name in (*DECLARED, *OTEL_COUNTERS, *OTEL_HISTOGRAMS):
        assert name in KNOWN, name
    assert {metric_kind(n) for n in OTEL_HISTOGRAMS} == {"histogram"}
    assert {metric_kind(n) for n in OTEL_COUNTERS} == {"counter"}
