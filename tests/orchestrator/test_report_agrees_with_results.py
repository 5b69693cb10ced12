"""A report rendered from a real short run shows the numbers of its results.json: cards,
thresholds (observed values in the unit the terminal uses), latency table, counters and gauges,
the sessions plot (the live states at the end, cumulative ended sessions), and fault marks."""

import html
import json
import re
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.metrics import Histogram
from orchestrator.report.figures import ENDED_COUNTERS, STATES, _cumulative, _gauge_levels, time_figures
from orchestrator.report.html import format_ms
from orchestrator.report.model import RunReport
from orchestrator.scenario.metric_names import metric_kind
from orchestrator.readout import format_observed
from orchestrator.scenario.results import format_summary

SCENARIO = """\
name: report-check
seed: 3
duration_limit: 20s
target: embedded
session:
  output_modalities: [text]
  turn_detection: null
populations:
  - {name: chat, script: talk, sessions: 4}
scripts:
  talk:
    - say: One short fact please.
    - pause: 1.5s
    - say: And another one.
faults:
  - {at: 0.7s, action: drop_connections, percent: 50}
  - {at: 1.1s, action: add_latency, ms: 30, for: 0.3s}
thresholds:
  - errors == 0
  - turn.time_to_first_text p95 < 800ms
  - turn.time_to_first_text p99 < 1.5s
  - reconnect.success_rate == 1
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    path = root / "s.yaml"
    path.write_text(SCENARIO)
    code = main(["run", str(path), "--quiet", "--out", str(root / "out")])
    results = json.loads((root / "out" / "results.json").read_text())
    page = (root / "out" / "report.html").read_text()
    assert code == 0, results["thresholds"]
    return results, page


def _cells(page, table_header):
    """Rows of the table whose first header is ``table_header``, as lists of cell texts."""
    table = re.search(r"<table[^>]*><thead><tr><th[^>]*>" + re.escape(table_header)
                      + r"</th>.*?</table>", page, re.S).group(0)
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in rows]


def _number(text):
    return float(text.replace(",", ""))


def test_cards_show_the_session_turn_error_and_reconnect_counts(run):
    results, page = run
    cards = dict((html.unescape(label), html.unescape(value)) for value, label in re.findall(
        r'<div class="value">(.*?)</div><div class="label">(.*?)</div>', page))
    s, c = results["sessions"], results["summary"]["counters"]
    assert _number(cards["sessions started"]) == s["started"] == 4
    assert _number(cards["completed"]) == s["completed"]
    assert _number(cards["failed"]) == s["failed"]
    assert _number(cards["stopped"]) == s["stopped"]
    assert _number(cards["turns completed"]) == c["turns.completed"]
    assert _number(cards["errors"]) == c["errors"]
    assert _number(cards["faults injected"]) == c["faults.injected"] == 2
    assert c["turns.barged_in"] == 0 and "barge-ins" not in cards  # no barge_in step: no card
    reconnects = [(k, v) for k, v in cards.items() if k.startswith("reconnects")]
    assert len(reconnects) == 1
    label, value = reconnects[0]
    succeeded, attempts = (int(x) for x in value.split(" / "))
    assert (succeeded, attempts) == (c["reconnect.succeeded"], c["reconnect.attempts"])
    assert attempts >= 1  # the drop happened
    # what is not a success is named: failed, abandoned or still reconnecting, never left out
    rest = attempts - succeeded
    named = sum(int(n) for n in re.findall(r"(\d+) (?:failed|abandoned|still reconnecting)", label))
    assert named == rest == c["reconnect.failed"] + c.get("reconnect.abandoned", 0)


def test_thresholds_show_observed_values_as_the_summary_does(run):
    results, page = run
    rows = _cells(page, "")
    by_expression = {row[1]: row for row in rows if len(row) == 4}
    summary = format_summary(results)
    for t in results["thresholds"]:
        row = by_expression[t["expression"]]
        shown = row[2]
        assert shown == format_observed(t["expression"], t["observed"])
        assert f"{t['expression']}  [observed {shown}]" in summary
        if t["expression"].startswith("turn."):  # a latency: ms, three significant digits
            assert shown.endswith("ms")
            assert float(shown[:-2]) == pytest.approx(t["observed"] * 1000, rel=5e-3)
        else:
            assert float(shown) == pytest.approx(t["observed"])
    # p95 and p99 of one metric in one unit
    assert {by_expression[e][2][-2:] for e in by_expression if e.startswith("turn.")} == {"ms"}


def test_latency_table_matches_the_histograms(run):
    results, page = run
    rows = _cells(page, "Histogram")
    summaries = results["summary"]["histograms"]
    assert {row[0] for row in rows} == set(summaries)
    for name, count, *stats in rows:
        h = summaries[name]
        assert _number(count) == h["count"]
        for text, key in zip(stats, ("p50", "p90", "p95", "p99", "max", "mean")):
            assert text == format_ms(h[key])
            assert _number(text) == pytest.approx(h[key] * 1000, rel=5e-3, abs=5e-3)
        # and the summary is what the stored histogram says
        stored = Histogram.from_dict(results["metrics"]["histograms"][name]).summary()
        assert stored["p95"] == h["p95"] and stored["count"] == h["count"]


def test_counters_and_gauges_tables_match(run):
    results, page = run
    counters = results["summary"]["counters"]
    rows = _cells(page, "Counter")
    # whole counts exactly; a fractional one (cost.usd) to the six digits the table shows
    assert {row[0]: _number(row[1]) for row in rows} == pytest.approx(counters, rel=1e-5)
    duration = results["duration_s"]
    for name, total, per_second in rows:
        assert _number(per_second) == pytest.approx(counters[name] / duration, rel=1e-3, abs=1e-12)
    gauges = {row[0]: _number(row[1]) for row in _cells(page, "Gauge")}
    assert gauges == pytest.approx(results["summary"]["gauges"])
    # the end of the run: nobody is still connected, and "closed" is no gauge of its own
    assert gauges["sessions.connected"] == 0 and "sessions.closed" not in gauges
    # every metric the run recorded is in the catalogue that thresholds are checked against
    for name in (*counters, *gauges, *results["summary"]["histograms"]):
        assert metric_kind(name) is not None, name


def test_sessions_plot_agrees_with_the_summary(run):
    results, page = run
    report = RunReport.from_results(results)
    s = results["sessions"]
    ended = _cumulative(report, ENDED_COUNTERS)
    assert ended[-1] == s["completed"] + s["failed"] + s["stopped"] == 4
    assert ended == sorted(ended)
    levels = {state: _gauge_levels(report, f"sessions.{state}") for state, _ in STATES}
    assert len(levels["connected"]) == len(ended)
    # the first second's sample is taken at its end: the 4 sessions were up by then
    assert levels["connected"][0] + levels["reconnecting"][0] + levels["connecting"][0] == 4
    # the final sample: nothing is live once every session has ended
    assert all(level[-1] == 0 for level in levels.values())
    # live + ended never exceeds the sessions started
    for i in range(len(ended)):
        assert sum(level[i] for level in levels.values()) + ended[i] <= s["started"]
    sessions_plot = re.search(r'data-plot="sessions".*?</figure>', page, re.S).group(0)
    assert "ended so far (completed + failed + stopped; not stacked)" in sessions_plot


def test_fault_marks_are_formatted_and_each_thing_has_one_legend_entry(run):
    results, page = run
    faults = [m["label"] for m in results["marks"] if m["kind"] == "fault"]
    assert faults == ["drop_connections(percent=50)", "add_latency(ms=30, duration=0.3)"]
    marks = _cells(page, "t (s)")
    assert [row[2] for row in marks if row[1] == "fault"] == faults
    for row, mark in zip(marks, results["marks"]):
        assert float(row[0]) == pytest.approx(mark["t"], abs=0.05)
    for figure in time_figures(RunReport.from_results(results)):
        labels = [item.label for item in figure.legend]
        assert len(labels) == len(set(labels)), (figure.name, labels)
        assert sum("fault" in label for label in labels) <= 1, (figure.name, labels)


def test_configuration_shows_effective_values(run):
    results, page = run
    config = results["scenario"]["config"]
    assert config["session"]["transcription"] is None  # not asked for: none
    assert config["session"]["voice"] == "alloy" and config["session"]["model"] == "gpt-realtime"
    assert config["scripts"]["talk"][0]["timeout"] == 30.0  # a defaulted field, written out
    block = html.unescape(re.search(r"Scenario configuration</summary><pre>(.*?)</pre>",
                                    page, re.S).group(1))
    assert json.loads(block) == config


def test_transcription_model_shows_in_the_configuration(tmp_path):
    from orchestrator.scenario.loader import load_scenario_text
    from orchestrator.scenario.unstructure import unstructure_scenario

    text = SCENARIO.replace("  turn_detection: null\n",
                            "  turn_detection: null\n  transcription: gpt-4o-transcribe\n")
    config = unstructure_scenario(load_scenario_text(text, str(tmp_path / "s.yaml")),
                                  effective=True)
    assert config["session"]["transcription"] == {"model": "gpt-4o-transcribe",
                                                  "language": None, "prompt": None}
