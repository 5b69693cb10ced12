"""The CLI end to end, in-process: exit codes, messages, results files."""

import json
import runpy
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_scenario_runs_and_passes(tmp_path, capsys):
    code = main(["run", str(ROOT / "scenarios/smoke.yaml"), "--quiet", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "5 completed" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["verdict"] == "pass" and results["sessions"]["completed"] == 5
    assert results["summary"]["histograms"]["turn.time_to_first_text"]["count"] == 5
    assert (tmp_path / "report.html").exists()


def test_report_rebuilds_from_results_and_reports_a_missing_one(tmp_path, capsys):
    assert main(["run", str(ROOT / "scenarios/smoke.yaml"), "--quiet", "--out", str(tmp_path)]) == 0
    (tmp_path / "report.html").unlink()
    assert main(["report", str(tmp_path)]) == 0
    assert "<svg" in (tmp_path / "report.html").read_text()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "results.json" in err and "Traceback" not in err


def _scenario(tmp_path, body):
    path = tmp_path / "s.yaml"
    path.write_text(body)
    return str(path)


def test_a_threshold_that_cannot_hold_exits_1(tmp_path, capsys):
    path = _scenario(tmp_path, """
name: impossible
session: {output_modalities: [text], turn_detection: null}
populations: [{name: p, script: s, sessions: 2}]
scripts: {s: [{say: hi}]}
thresholds: ["turn.time_to_first_text p95 < 1ms", "errors == 0"]
""")
    assert main(["run", path, "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "FAIL turn.time_to_first_text p95 < 1ms" in out
    assert "ok   errors == 0" in out


def test_broken_yaml_exits_2_with_file_line_and_field_and_no_traceback(tmp_path, capsys):
    path = _scenario(tmp_path, """name: broken
populations:
  - name: p
    script: s
    phases:
      - {duration: 10s, arrival_rate: fast}
scripts: {s: [{say: hi}]}
""")
    assert main(["run", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6:" in err and "arrival_rate" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_yaml_syntax_error_exits_2(tmp_path, capsys):
    path = _scenario(tmp_path, "name: x\npopulations: [\n")
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err
    assert path in err and "Traceback" not in err


def test_missing_file_and_bad_usage_exit_2(capsys):
    assert main(["run", "/nonexistent/x.yaml"]) == 2
    assert main(["run"]) == 2
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_remote_target_without_key_exits_3(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = _scenario(tmp_path, """
name: remote
target: {url: "ws://127.0.0.1:9"}
populations: [{name: p, script: s, sessions: 1}]
scripts: {s: [{say: hi}]}
""")
    assert main(["run", path, "--quiet"]) == 3
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_validate_and_version(capsys):
    assert main(["validate", str(ROOT / "scenarios/chaos-reconnect.yaml")]) == 0
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "rtfleet" in out


def test_json_lines_mode_prints_only_json(tmp_path, capsys):
    assert main(["run", str(ROOT / "scenarios/smoke.yaml"), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert parsed[-1]["summary"]["verdict"] == "pass"


def test_bounded_chaos_run_reconnects_every_session_and_loses_no_turn(tmp_path, capsys):
    path = _scenario(tmp_path, """
name: chaos-quick
seed: 3
duration_limit: 1m
target:
  faults: {expire_after: 5s}
session: {output_modalities: [text], turn_detection: null}
populations:
  - {name: p, script: chat, sessions: 10}
scripts:
  chat:
    - repeat: 6
      steps:
        - say: Tell me something.
        - pause: 1s
faults:
  - {at: 2s, action: drop_connections, percent: 50}
  - {at: 3s, action: expire_keys}
  - {at: 4s, action: drop_connections, percent: 100}
  - {at: 6s, action: kill_server, restart_after: 500ms}
thresholds:
  - reconnect.success_rate == 1
  - reconnect.attempts >= 15
  - turns.failed == 0
  - sessions.completed == 10
  - errors == 0
""")
    code = main(["run", path, "--quiet", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0, out
    results = json.loads((tmp_path / "out/results.json").read_text())
    counters = results["summary"]["counters"]
    assert counters["turns.completed"] == 60, "every turn of every session was answered"
    assert counters["faults.injected"] == 4
    assert [m["label"].split("(")[0] for m in results["marks"] if m["kind"] == "fault"] == [
        "drop_connections", "expire_keys", "drop_connections", "kill_server"]


def test_embed_example_runs(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["embed.py"])
    runpy.run_path(str(ROOT / "examples/embed.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert out.count("You said: Hello from") == 3
    assert "closed" in out
