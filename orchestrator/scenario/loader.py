"""Load scenario files: YAML text -> `Scenario`, every error as one `ScenarioError`.

::

    load_scenario("scenarios/smoke.yaml")                  # read and load a file
    load_scenario_text(text, "smoke.yaml")                 # load text (play paths vs. its dir)
    dump_scenario_text(scenario)                           # YAML that loads back equal

Errors read ``file:line:column: field.path: message``, e.g.::

    scenarios/x.yaml:12:7: populations[0].phases[1].arrival_rate: expected a number, got 'fast'

How: the YAML is parsed with a loader that keeps the position of every key, value and item
(`marks`); cattrs (`converter`) structures it strictly; whatever structuring raises is
flattened into field paths (`errors.problems_of`), and each path is located in the document.
The first problem in file order is raised, with all of them in ``ScenarioError.errors``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .converter import structure_scenario
from .errors import Problem, ScenarioError, format_path, problems_of
from .marks import locate, parse_marked
from .model import Scenario
from .unstructure import unstructure_scenario

__all__ = ["load_scenario", "load_scenario_text", "dump_scenario_text", "ScenarioError"]


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and load the scenario file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError(f"cannot read the scenario file: {reason}", file=str(path)) from exc
    return load_scenario_text(text, str(path))


def load_scenario_text(
    text: str, filename: str = "<string>", *, base_dir: str | os.PathLike[str] | None = None
) -> Scenario:
    """Load scenario YAML ``text``; ``filename`` is used in messages and, unless ``base_dir``
    is given, its directory is where relative ``play`` paths are resolved (they must exist).
    """
    root = Path(base_dir) if base_dir is not None else Path(filename).parent
    try:
        document = parse_marked(text, filename)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, filename) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        before = text[: exc.position]
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"YAML syntax error: character U+{code:04X} is not allowed ({exc.reason})"
        raise ScenarioError(message, file=filename, line=line, column=column) from None
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML errors without a mark
        raise ScenarioError(f"invalid YAML: {exc}", file=filename) from None
    except RecursionError:
        message = "the document is nested too deeply"
        raise ScenarioError(message, file=filename, line=1, column=1) from None
    if document is None:
        message = "the file is empty; expected a scenario mapping (name:, populations:, ...)"
        raise ScenarioError(message, file=filename, line=1, column=1)
    try:
        return structure_scenario(document, play_base=root.absolute())
    except Exception as exc:  # noqa: BLE001 - every structuring failure becomes a ScenarioError
        problems = problems_of(exc)
    raise _scenario_error(problems, document, filename)


def dump_scenario_text(scenario: Scenario) -> str:
    """YAML for ``scenario`` (canonical long forms, durations in seconds)."""
    return yaml.safe_dump(unstructure_scenario(scenario), sort_keys=False, allow_unicode=True)


def _syntax_error(exc: yaml.MarkedYAMLError, filename: str) -> ScenarioError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    if exc.context and exc.problem_mark is not None:
        problem = f"{problem} ({exc.context}"
        if exc.context_mark is not None and exc.context_mark.line != exc.problem_mark.line:
            problem += f" started at line {exc.context_mark.line + 1}"
        problem += ")"
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return ScenarioError(f"YAML syntax error: {problem}", file=filename, line=line, column=column)


def _scenario_error(problems: Sequence[Problem], document: Any, filename: str) -> ScenarioError:
    if not problems:  # pragma: no cover - problems_of always reports something
        problems = [Problem((), "invalid scenario")]
    located = []
    for order, p in enumerate(problems):
        line, column = locate(document, p.path, at_key=p.at_key, offset=p.offset)
        field = format_path(p.path)
        error = ScenarioError(p.message, file=filename, line=line, column=column, field=field)
        located.append(((line, column, order), error))
    located.sort(key=lambda item: item[0])
    errors = [error for _, error in located]
    first = errors[0]
    first.errors = tuple(errors)
    return first
