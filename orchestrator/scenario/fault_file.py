"""Fault files for ``rtfleet serve --faults FILE``: the scenario fault vocabulary, standalone.

::

    # chaos.yaml: what the server does wrong while your own app talks to it
    seed: 7                       # seeds the random choices (which connections drop, ...)
    server:                       # all run long, as a scenario's ``target: {faults: ...}``
      latency: 20ms
    faults:                       # one-off actions, as a scenario's ``faults:``; ``at`` counts
      - {at: 10s, action: drop_connections, percent: 50}     # from when the server listens
      - {at: 20s, action: reject_keys, for: 5s}
      - {at: 30s, action: kill_server, restart_after: 2s}
    repeat: 60s                   # optional: the timeline starts over every 60 s

Every key is optional, but a file must say something. Errors read like scenario errors,
``file:line:column: field: message`` (one :class:`ScenarioError`), and the same text is used
for a fault posted to the control path (``/_rtfleet/faults``; see ``serve_faults.py``), whose
body is one timeline entry without ``at``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from .checks import optional_seconds
from .converter import converter
from .durations import Duration
from .errors import InvalidField, ScenarioError, describe, problems_of
from .faults import FaultEvent, ServerFaults
from .loader import _scenario_error, _syntax_error
from .marks import parse_marked

__all__ = ["FaultFile", "load_fault_file", "load_fault_text", "parse_fault_action"]


def _to_events(value: Any) -> tuple[FaultEvent, ...]:
    return tuple(value)


@attrs.frozen
class FaultFile:
    seed: int = 0
    #: what goes wrong on every connection, all run long
    server: ServerFaults = attrs.field(factory=ServerFaults)
    #: one-off actions at their times (seconds after the server started listening)
    faults: tuple[FaultEvent, ...] = attrs.field(default=(), converter=_to_events)
    #: start the timeline over every this many seconds (None: once)
    repeat: Duration | None = attrs.field(default=None, converter=optional_seconds)

    def __attrs_post_init__(self) -> None:
        if self.repeat is not None:
            if self.repeat <= 0:
                raise InvalidField("repeat must be longer than 0s", ("repeat",))
            late = [e.at for e in self.faults if e.at >= self.repeat]
            if late:
                raise InvalidField(f"repeat ({self.repeat:g}s) must be later than every fault "
                                   f"(one is at {late[0]:g}s)", ("repeat",))


def load_fault_file(path: str | os.PathLike[str]) -> FaultFile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError(f"cannot read the fault file: {reason}", file=str(path)) from exc
    return load_fault_text(text, str(path))


def load_fault_text(text: str, filename: str = "<string>") -> FaultFile:
    try:
        document = parse_marked(text, filename)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, filename) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ScenarioError(f"invalid YAML: {exc}", file=filename, line=1, column=1) from None
    if not isinstance(document, Mapping) or not document:
        message = ("a fault file is a mapping with 'faults:' (a timeline), 'server:' (all run "
                   f"long), 'seed:' or 'repeat:'; got {describe(document)}")
        raise ScenarioError(message, file=filename, line=1, column=1)
    try:
        return converter.structure(document, FaultFile)
    except Exception as exc:  # noqa: BLE001 - every structuring failure becomes a ScenarioError
        problems = problems_of(exc)
    raise _scenario_error(problems, document, filename)


def parse_fault_action(body: Any) -> Any:
    """One action from a JSON body (``{"action": "drop_connections", "percent": 50}``, or the
    short form ``{"drop_connections": {"percent": 50}}``); raises :class:`InvalidField`."""
    if not isinstance(body, Mapping):
        raise InvalidField(f"expected a fault action (a JSON object such as "
                           f'{{"action": "drop_connections"}}), got {describe(body)}')
    if "at" in body:
        raise InvalidField("'at' has no place here: a posted fault happens now", ("at",))
    try:
        return converter.structure({"at": 0, **body}, FaultEvent).action
    except InvalidField:
        raise
    except Exception as exc:  # noqa: BLE001
        problems = problems_of(exc)
        raise InvalidField.many(problems) from None



