"""Fuzz harness: scenario YAML through the loader.

Input: the file's bytes.  ``load_scenario`` reads files as UTF-8 and reports undecodable
files itself, so undecodable input is decoded with replacement characters here.  Only
:class:`ScenarioError` may escape ``load_scenario_text``; a scenario that loads must dump to
YAML that loads again.
"""

from __future__ import annotations

import tempfile

from orchestrator.scenario.loader import ScenarioError, dump_scenario_text, load_scenario_text

# relative ``play:`` paths resolve here (an empty directory: they never exist)
_BASE = tempfile.mkdtemp(prefix="rtfleet-fuzz-yaml-")


def check(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        scenario = load_scenario_text(text, "fuzz.yaml", base_dir=_BASE)
    except ScenarioError:
        return
    dumped = dump_scenario_text(scenario)
    assert load_scenario_text(dumped, "dumped.yaml", base_dir=_BASE) == scenario


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
