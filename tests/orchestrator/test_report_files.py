"""write_report and rebuild_report: report.html beside results.json, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.report import ReportError, rebuild_report, render_report, write_report

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results-sample.json"


def test_write_report_writes_report_html(tmp_path: Path) -> None:
    results = json.loads(FIXTURE.read_text(encoding="utf-8"))
    path = write_report(tmp_path, results)
    assert path == tmp_path / "report.html"
    assert path.read_text(encoding="utf-8") == render_report(results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_write_report_refuses_bad_results_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ReportError):
        write_report(tmp_path, {"format": 7})
    assert list(tmp_path.iterdir()) == []


def test_rebuild_report_reads_results_json(tmp_path: Path) -> None:
    shutil.copy(FIXTURE, tmp_path / "results.json")
    (tmp_path / "report.html").write_text("stale", encoding="utf-8")
    path = rebuild_report(tmp_path)
    assert path == tmp_path / "report.html"
    results = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert path.read_text(encoding="utf-8") == render_report(results)


def test_rebuild_report_accepts_a_string_path(tmp_path: Path) -> None:
    shutil.copy(FIXTURE, tmp_path / "results.json")
    assert rebuild_report(str(tmp_path)) == tmp_path / "report.html"


def test_missing_results_json(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as info:
        rebuild_report(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "results.json") in message and "no such file" in message


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no such file"):
        rebuild_report(tmp_path / "nowhere")


def test_results_json_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "results.json").mkdir()
    with pytest.raises(ReportError, match="cannot read"):
        rebuild_report(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "results: expected an object, got list"),
        ('{"format": 3}', "unsupported results format 3"),
        ('{"format": 1, "thresholds": [{"passed": 1}]}', "results.thresholds[0].passed"),
    ],
)
def test_malformed_results_json(tmp_path: Path, content: str, message: str) -> None:
    source = tmp_path / "results.json"
    source.write_text(content, encoding="utf-8")
    with pytest.raises(ReportError) as info:
        rebuild_report(tmp_path)
    assert str(info.value).startswith(f"{source}: ")
    assert message in str(info.value)
    assert not (tmp_path / "report.html").exists()


def test_results_json_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_bytes(b'{"format": 1, "target": "\xff"}')
    with pytest.raises(ReportError, match="cannot read"):
        rebuild_report(tmp_path)


def test_report_error_is_a_value_error() -> None:
    assert issubclass(ReportError, ValueError)
