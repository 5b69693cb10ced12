"""Fuzz harness: a run's ``results.json`` as read by ``rtfleet report`` and ``report merge``.

Input: the file's bytes.  ``rtfleet report DIR`` (``rebuild_report``) may raise only
:class:`ReportError` (the CLI turns it into a usage error).  ``rtfleet report merge``
reads each file with ``json.loads`` and catches ``OSError``/``ValueError``, then merges (here two
copies of the input) with ``merge_results`` and catches ``ValueError``/``KeyError``/``TypeError``:
nothing else may escape the merge.  (What the CLI does with a merged result, summary and
report, is outside this reader's harness; see fuzz/README.md for the findings there.)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from orchestrator.report import ReportError, rebuild_report
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
    except ValueError:  # what `report merge` catches when reading
        return
    try:
        merge_results([results, results])
    except (ValueError, KeyError, TypeError):  # what `report merge` catches when merging
        pass


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
