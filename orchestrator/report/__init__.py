"""The run report: one self-contained ``report.html`` beside a run's ``results.json``.

* `render_report(results)` -> the page as a string (no script, nothing loaded from anywhere).
* `write_report(out_dir, results)` writes ``out_dir/report.html`` and returns its path.
* `live.LivePage` serves the report while a run goes (``rtfleet run --ui PORT``), rendered by
  the same code from the results so far, and this page at the end.
* `rebuild_report(run_dir)` reads ``run_dir/results.json`` and writes the page again (for
  ``rtfleet report DIR``).

Exceptions::

    ReportError (ValueError)    results.json missing, unreadable, not JSON, of another
                                format or malformed; the message names the file (and field)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .html import render_report
from .model import RESULTS_FORMAT, ReportError

__all__ = ["render_report", "write_report", "rebuild_report", "ReportError", "RESULTS_FORMAT",
           "REPORT_NAME", "RESULTS_NAME"]

REPORT_NAME = "report.html"
RESULTS_NAME = "results.json"


def write_report(out_dir: Path | str, results: dict[str, Any]) -> Path:
    """Render ``results`` and write ``out_dir/report.html`` (atomically: a reader never sees
    half a page). Returns the path written."""
    out_dir = Path(out_dir)
    page = render_report(results)
    path = out_dir / REPORT_NAME
    partial = out_dir / f".{REPORT_NAME}.partial"
    try:
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def rebuild_report(run_dir: Path | str) -> Path:
    """Read ``run_dir/results.json`` and (re)write ``run_dir/report.html`` from it."""
    run_dir = Path(run_dir)
    source = run_dir / RESULTS_NAME
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{source}: no such file (is {run_dir} a run's output directory?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{source}: cannot read: {exc}") from exc
    try:
        results = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{source}: not valid JSON: {exc}") from exc
    except RecursionError:
        raise ReportError(f"{source}: not a results file (JSON nested too deeply)") from None
    try:
        return write_report(run_dir, results)
    except ReportError as exc:
        raise ReportError(f"{source}: {exc}") from exc
    except OSError as exc:
        raise ReportError(f"{run_dir / REPORT_NAME}: cannot write: {exc}") from exc
