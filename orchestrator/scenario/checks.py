"""attrs converters and validators shared by the scenario model.

Validators raise `InvalidField` naming the field (its scenario-file key), so a hand-built
model and a loaded file report the same message; the loader adds file, line and column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from .durations import parse_duration
from .errors import InvalidField

__all__ = [
    "seconds",
    "optional_seconds",
    "at_least",
    "at_most",
    "non_empty",
    "to_tuple",
    "key_of",
    "one_of",
    "primary_key",
]


def key_of(attribute: attrs.Attribute) -> str:
    return attribute.metadata.get("key", attribute.name)


def seconds(value: Any) -> float:
    return parse_duration(value)


def optional_seconds(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


def to_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, Mapping)):
        raise InvalidField(f"expected a list, got {type(value).__name__}")
    return tuple(value)


Validator = Callable[[Any, attrs.Attribute, Any], None]


def at_least(minimum: float, *, strict: bool = False) -> Validator:
    """Value (when not None) is >= minimum (> minimum if ``strict``)."""

    def check(_instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        if value < minimum or (strict and value == minimum):
            relation = ">" if strict else ">="
            message = f"must be {relation} {minimum:g}, got {value!r}"
            raise InvalidField(message, (key_of(attribute),))

    return check


def at_most(maximum: float) -> Validator:
    def check(_instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None and value > maximum:
            raise InvalidField(f"must be <= {maximum:g}, got {value!r}", (key_of(attribute),))

    return check


def one_of(*choices: str) -> Validator:
    """Value is one of ``choices``."""

    def check(_instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in choices:
            raise InvalidField(f"expected one of {', '.join(choices)}, got {value!r}",
                               (key_of(attribute),))

    return check


def non_empty(_instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not value or (isinstance(value, str) and not value.strip()):
        raise InvalidField("must not be empty", (key_of(attribute),))


def primary_key(cls: type) -> str | None:
    """The file key of the field a kind key carries (``say: "text"`` -> ``text``), if any."""
    name = getattr(cls, "primary", None)
    if name is None:
        return None
    return next(a.metadata.get("key", a.name) for a in attrs.fields(cls) if a.name == name)
