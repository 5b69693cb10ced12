"""Errors of scenario models and scenario files.

::

    Exception
     └── ScenarioError   a scenario file or text is wrong: file, line, column, field
    ValueError
     └── InvalidField    a model value is wrong (raised by the model's own checks and by
                         the structuring hooks; carries one or more `Problem` paths)

`InvalidField` is what Python callers see when they build a model by hand. The loader never lets
it (or any cattrs error) escape: `problems_of` flattens whatever structuring raised into
`Problem` values (a field path and a message), and the loader locates each path in the YAML
document and raises one `ScenarioError`, the first in file order, with all of them attached.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from .thresholds import ThresholdError

__all__ = [
    "ScenarioError",
    "InvalidField",
    "Problem",
    "PathToken",
    "format_path",
    "problems_of",
    "did_you_mean",
    "describe",
    "yaml_key",
]

PathToken = Any  # str keys and int indexes; any YAML key in unknown-key errors
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@attrs.frozen
class Problem:
    """One thing wrong, at a path of mapping keys and sequence indexes."""

    path: tuple[PathToken, ...]
    message: str
    #: point at the key (unknown keys) rather than at the value
    at_key: bool = False
    #: character offset inside a one-line scalar (threshold expressions)
    offset: int | None = None

    def prefixed(self, prefix: Sequence[PathToken]) -> Problem:
        return attrs.evolve(self, path=(*prefix, *self.path))


class InvalidField(ValueError):
    """A model value is wrong. ``problems`` holds one or more located messages."""

    def __init__(
        self,
        message: str = "",
        path: Sequence[PathToken] = (),
        *,
        at_key: bool = False,
        offset: int | None = None,
        problems: Iterable[Problem] = (),
    ) -> None:
        found = tuple(problems)
        if not found:
            found = (Problem(tuple(path), message, at_key, offset),)
        self.problems: tuple[Problem, ...] = found
        super().__init__(self.__str__())

    @classmethod
    def many(cls, problems: Iterable[Problem]) -> InvalidField:
        return cls(problems=problems)

    def __str__(self) -> str:
        parts = []
        for p in self.problems:
            where = format_path(p.path)
            parts.append(f"{where}: {p.message}" if where else p.message)
        return "; ".join(parts)


class ScenarioError(Exception):
    """A scenario file is wrong. ``str()`` is one line: ``file:line:column: field: message``.

    ``line`` and ``column`` are 1-based (None when unknown, e.g. the file cannot be read);
    ``field`` is the dotted path (``populations[0].phases[1].arrival_rate``, "" for the whole
    file). ``errors`` holds every problem found, in file order, this one first.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str = "",
        errors: Sequence[ScenarioError] = (),
    ) -> None:
        self.message = " ".join(message.split())
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.errors: tuple[ScenarioError, ...] = tuple(errors) or (self,)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = [self.file or "<scenario>"]
        if self.line is not None:
            where.append(str(self.line))
            if self.column is not None:
                where.append(str(self.column))
        head = ":".join(where)
        if self.field:
            return f"{head}: {self.field}: {self.message}"
        return f"{head}: {self.message}"

    def __repr__(self) -> str:
        return f"ScenarioError({self.__str__()!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # keep the position across pickling
        fields = (self.message, self.file, self.line, self.column, self.field)
        return (_rebuild_scenario_error, fields)


def _rebuild_scenario_error(
    message: str, file: str | None, line: int | None, column: int | None, field: str
) -> ScenarioError:
    return ScenarioError(message, file=file, line=line, column=column, field=field)


def format_path(path: Sequence[PathToken]) -> str:
    """``("populations", 0, "phases", 1, "rate") -> "populations[0].phases[1].rate"``."""
    out = ""
    for token in path:
        if isinstance(token, int) and not isinstance(token, bool):
            out += f"[{token}]"
        elif isinstance(token, str) and _IDENT.fullmatch(token):
            out += f".{token}" if out else token
        else:
            out += f"[{token!r}]"
    return out


def describe(value: Any) -> str:
    """How a wrong value is shown in a message: ``'fast'``, ``12``, ``a list``, ``a mapping``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """A "did you mean" suffix (with a leading "; "), or "" if nothing is close."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def yaml_key(cls: type, name: str) -> str:
    """The key a scenario file uses for attribute ``name`` of ``cls`` (metadata ``key``)."""
    if attrs.has(cls):
        for a in attrs.fields(cls):
            if a.name == name:
                return a.metadata.get("key", name)
    return name


def yaml_keys(cls: type) -> list[str]:
    return [a.metadata.get("key", a.name) for a in attrs.fields(cls) if a.init]


def unknown_key(key: object, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    hint = did_you_mean(key, allowed)
    if hint:
        return f"unknown key {key!r}{hint}"
    return f"unknown key {key!r} (expected one of: {', '.join(allowed)})"


def problems_of(exc: BaseException, prefix: Sequence[PathToken] = ()) -> list[Problem]:
    """Flatten anything structuring raised into located problems (never raises)."""
    prefix = tuple(prefix)
    if isinstance(exc, InvalidField):
        return [p.prefixed(prefix) for p in exc.problems]
    if isinstance(exc, ClassValidationError):
        out: list[Problem] = []
        with_notes, others = exc.group_exceptions()
        for sub, note in with_notes:
            key = yaml_key(exc.cl, note.name)
            if isinstance(sub, KeyError) and sub.args == (key,):
                out.append(Problem(prefix, f"missing required key {key!r}"))
            else:
                out.extend(problems_of(sub, (*prefix, key)))
        for sub in others:
            out.extend(problems_of(sub, prefix))
        return out
    if isinstance(exc, IterableValidationError):
        out = []
        with_notes, others = exc.group_exceptions()
        for sub, note in with_notes:
            out.extend(problems_of(sub, (*prefix, note.index)))
        for sub in others:
            out.extend(problems_of(sub, prefix))
        return out
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = yaml_keys(exc.cl) if attrs.has(exc.cl) else []
        return [
            Problem((*prefix, key), unknown_key(key, allowed), at_key=True)
            for key in sorted(exc.extra_fields, key=str)
        ]
    if isinstance(exc, BaseExceptionGroup):
        return [p for sub in exc.exceptions for p in problems_of(sub, prefix)]
    if isinstance(exc, ThresholdError):  # the field path shows where the expression is
        return [Problem(prefix, exc.reason, offset=exc.position)]
    return [Problem(prefix, str(exc) or type(exc).__name__)]
