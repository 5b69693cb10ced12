"""Fuzz harness: ``rtfleet serve --faults FILE`` and the ``/_rtfleet/faults`` control body.

Input: the bytes of a fault file (decoded as UTF-8 with replacement characters, as for
scenario YAML). Only :class:`ScenarioError` may escape ``load_fault_text``. The same bytes,
when they are JSON, go to ``parse_fault_action`` as a posted body: only :class:`InvalidField`
may escape, and an action that parses is one of the fault vocabulary's classes.
"""

from __future__ import annotations

import json

from orchestrator.scenario.errors import InvalidField, ScenarioError
from orchestrator.scenario.fault_file import load_fault_text, parse_fault_action
from orchestrator.scenario.faults import FAULT_ACTIONS


def check(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        loaded = load_fault_text(text, "fuzz.yaml")
    except ScenarioError:
        pass
    else:
        assert all(type(e.action) in FAULT_ACTIONS.values() for e in loaded.faults)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return
    try:
        action = parse_fault_action(body)
    except InvalidField:
        return
    assert type(action) in FAULT_ACTIONS.values()


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
