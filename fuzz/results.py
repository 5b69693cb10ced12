"""Fuzz harness: a run's ``results.json`` as read by ``rtfleet report`` and ``report merge``.

Input: the file's bytes.  ``rtfleet report DIR`` (``rebuild_report``) may raise only
:class:`ReportError` (the CLI turns it into a usage error).  ``rtfleet report merge``
reads each file with ``json.loads`` and catches ``OSError``/``ValueError``/``RecursionError``,
then merges (here two copies of the input) with ``merge_results`` and formats the summary,
catching ``ValueError``/``KeyError``/``TypeError``/``AttributeError`` (not rtfleet results):
nothing else may escape.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from orchestrator.report import ReportError, rebuild_report
from orchestrator.scenario.results import format_summary
from orchestrator.scenario.shard import merge_results

_DIR = Path(tempfile.mkdtemp(prefix="rtfleet-fuzz-results-"))


def check(data: bytes) -> None:
    (_DIR / "results.json").write_bytes(data)
    try:
        rebuild_report(_DIR)
    except ReportError:
        pass
    try:
        results = json.loads(data)
    except (ValueError, RecursionError):  # what `report merge` catches when reading
        return
    try:
        format_summary(merge_results([results, results]))
    except (ValueError, KeyError, TypeError, AttributeError):  # what `report merge` catches
        pass


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
