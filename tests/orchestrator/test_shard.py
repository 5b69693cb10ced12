"""Shards split the load exactly; merged shard results equal one run's totals."""

import json
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.metrics import Histogram, MetricsRegistry, TimeSeries
from orchestrator.scenario import load_scenario_text
from orchestrator.scenario.shard import merge_results, parse_shard, shard, ShardSpecError

SCENARIO = """
name: split
seed: 10
populations:
  - name: a
    script: s
    phases:
      - {sessions: 10}
      - {duration: 10s, concurrency: 7, ramp_to: 11}
      - {duration: 10s, arrival_rate: 3, ramp_to: 6}
scripts: {s: [{say: hi}]}
"""


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_shards_add_up_to_the_whole(count):
    scenario = load_scenario_text(SCENARIO)
    parts = [shard(scenario, i, count) for i in range(count)]
    whole = scenario.populations[0].phases

    def total(attr, k):
        return sum(getattr(p.populations[0].phases[k], attr) or 0 for p in parts if p.populations)

    assert total("sessions", 0) == whole[0].sessions
    assert total("concurrency", 1) == whole[1].concurrency
    assert total("ramp_to", 1) == whole[1].ramp_to
    assert total("arrival_rate", 2) == pytest.approx(whole[2].arrival_rate)
    assert total("ramp_to", 2) == pytest.approx(whole[2].ramp_to)
    assert [p.seed for p in parts] == [10 + i for i in range(count)]


def test_parse_shard():
    assert parse_shard("2/4") == (1, 4)
    for bad in ("0/4", "5/4", "x", "1/0", ""):
        with pytest.raises(ShardSpecError):
            parse_shard(bad)


def _fake_results(values, counters, started):
    registry = MetricsRegistry()
    for v in values:
        registry.observe("turn.time_to_first_text", v)
    for name, n in counters.items():
        registry.inc(name, n)
    series = TimeSeries()
    for i, v in enumerate(values):
        series.observe("turn.time_to_first_text", v, float(i % 5))
    return {"format": 1, "scenario": {"name": "x"}, "target": "embedded", "started_at": started,
            "finished_at": started + 5, "duration_s": 5.0, "verdict": "pass",
            "thresholds": [{"expression": "turn.time_to_first_text p95 < 50ms"},
                           {"expression": "sessions.completed == 30"}],
            "metrics": registry.snapshot(), "timeline": series.snapshot(), "marks": [],
            "sessions": {"errors": []}}


def test_merged_shards_equal_a_single_run():
    import random

    rng = random.Random(4)
    shards = [[rng.lognormvariate(-3.5, 0.6) for _ in range(n)] for n in (100, 250, 57)]
    parts = [_fake_results(v, {"sessions.completed": 10, "turns.completed": len(v)}, 100.0 + i)
             for i, v in enumerate(shards)]
    merged = merge_results(parts)
    single = Histogram.from_values([x for s in shards for x in s])
    h = Histogram.from_dict(merged["metrics"]["histograms"]["turn.time_to_first_text"])
    assert h == single
    assert merged["summary"]["histograms"]["turn.time_to_first_text"]["p99"] == single.percentile(99)
    assert merged["summary"]["counters"]["turns.completed"] == 407
    assert merged["sessions"]["completed"] == 30
    p95 = single.percentile(95)
    assert merged["verdict"] == ("pass" if p95 < 0.05 else "fail")
    assert merged["thresholds"][1]["passed"] is True
    assert merged["started_at"] == 100.0


def test_three_shard_processes_merge_to_a_single_runs_totals(tmp_path, capsys):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("""
name: sharded
session: {output_modalities: [text], turn_detection: null}
populations: [{name: p, script: s, sessions: 9}]
scripts: {s: [{say: hello}, {say: again}]}
thresholds: ["sessions.completed == 9", "turns.completed == 18", "errors == 0"]
""")
    dirs = []
    for i in range(3):
        out = tmp_path / f"shard{i}"
        assert main(["run", str(scenario), "--shard", f"{i + 1}/3", "--quiet", "--out", str(out)]) == 1
        dirs.append(str(out))  # each shard alone fails "== 9": the verdict belongs to the merge
    merged_dir = tmp_path / "merged"
    assert main(["report", "merge", *dirs, "--out", str(merged_dir)]) == 0
    merged = json.loads((merged_dir / "results.json").read_text())
    assert merged["sessions"]["completed"] == 9 and merged["scenario"]["shards"] == 3
    assert merged["summary"]["histograms"]["turn.time_to_first_text"]["count"] == 18
    assert (merged_dir / "report.html").exists()


def test_workers_run_shards_in_processes_and_merge(tmp_path, capsys):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("""
name: workers
session: {output_modalities: [text], turn_detection: null}
populations: [{name: p, script: s, sessions: 6}]
scripts: {s: [{say: hello}]}
thresholds: ["sessions.completed == 6", "errors == 0"]
""")
    assert main(["run", str(scenario), "--workers", "2", "--quiet", "--out", str(tmp_path / "o")]) == 0
    merged = json.loads((tmp_path / "o/results.json").read_text())
    assert merged["scenario"]["workers"] == 2 and merged["sessions"]["completed"] == 6


def test_shard_comes_from_the_indexed_job_environment(tmp_path, monkeypatch, capsys):
    import yaml

    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy/indexed-job.yaml").read_text())
    assert manifest["spec"]["completionMode"] == "Indexed"
    env = {e["name"]: e.get("value") for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RTFLEET_SHARD_COUNT"] == str(manifest["spec"]["completions"])
    from orchestrator.cli import build_parser

    monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
    monkeypatch.setenv("RTFLEET_SHARD_COUNT", "4")
    assert build_parser().parse_args(["run", "x.yaml"]).shard == "3/4"
