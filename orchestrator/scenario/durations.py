"""Durations as scenario files write them, and as the model keeps them (float seconds).

Accepted forms: plain numbers (seconds: ``2``, ``0.5``), numeric strings (``"2"``), and a
number with a unit, ``ms``, ``s``, ``m`` or ``h``: ``"500ms"``, ``"2s"``, ``"1.5m"``, ``"1h"``.
Parts may be chained, largest first or not: ``"1m30s"``, ``"1h 15m"``. Durations are never
negative, NaN or infinite.
"""

from __future__ import annotations

import math
import re
from typing import NewType

__all__ = ["Duration", "DurationError", "parse_duration", "format_duration"]

#: Seconds, as a float. A distinct name so that the structuring layer can accept "2s".
Duration = NewType("Duration", float)

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN = re.compile(rf"\s*({_NUMBER}(?:[eE][-+]?\d+)?)\s*")
_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|s|m|h)\s*")
_HINT = "expected seconds or a number with a unit ms, s, m or h (e.g. 500ms, 2s, 1.5m, 1h)"


class DurationError(ValueError):
    """A value that is not a duration; the message says what was expected."""


def parse_duration(value: object) -> float:
    """Return ``value`` as float seconds; raise `DurationError` with a clear message."""
    if isinstance(value, bool):
        raise DurationError(f"expected a duration, got {value!r}; {_HINT}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise DurationError(f"expected a duration, got {type(value).__name__}; {_HINT}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise DurationError(f"expected a finite duration, got {value!r}")
    if seconds < 0:
        raise DurationError(f"a duration cannot be negative, got {value!r}")
    return seconds


def _parse_text(text: str) -> float:
    plain = _PLAIN.fullmatch(text)
    if plain:
        return float(plain.group(1))
    total, pos = 0.0, 0
    while pos < len(text):
        part = _PART.match(text, pos)
        if part is None:
            break
        total += float(part.group(1)) * _UNITS[part.group(2)]
        pos = part.end()
    if pos == 0 or pos != len(text):
        raise DurationError(f"invalid duration {text!r}; {_HINT}")
    return total


def format_duration(seconds: float) -> str:
    """A short human form for messages: ``0.25 -> "250ms"``, ``90 -> "90s"``, ``7200 -> "2h"``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds:g}s"
