"""Pass/fail thresholds of a run: ``"<metric> [<stat>] <op> <value>[<unit>]"``.

Examples::

    turn.time_to_first_audio p95 < 800ms
    turn.time_to_first_text p99 <= 1.2s
    reconnect.success_rate == 1
    errors == 0
    sessions.completed >= 50

* **metric**: a dotted name (``[A-Za-z_][A-Za-z0-9_]*`` parts).
* **stat** (optional): ``p50 p90 p95 p99`` or any ``pNN``/``pNN.N`` (0-100), ``min max mean
  count rate``. Without a stat the threshold compares the metric's plain value (a counter or
  a gauge).
* **op**: ``< <= > >= == !=``. ``==``/``!=`` compare with a relative tolerance of 1e-9.
* **value**: a number, optionally with a unit: ``ms`` and ``s`` (stored in seconds, the unit
  of every time metric), ``%`` (stored as a fraction: ``99%`` is 0.99).

`evaluate` asks a lookup ``(metric, stat) -> float | None`` for each observed value.

**Absent metrics.** ``None`` means the metric was never recorded. That fails the threshold
(reason: "not recorded"), except for *count-like* thresholds, where absence means that nothing
was counted and the observed value is 0: the stat is ``count`` or ``rate``, or there is no stat
and the metric's last name part is ``errors``, ``failures``, ``failed``, ``timeouts``,
``dropped`` or ``rejected`` (or ends with ``_`` and one of those, e.g. ``ws.close_errors``).
So ``errors == 0`` passes when no error was ever counted, while ``sessions.completed >= 50``
fails loudly if no such metric exists (a typo in a metric name never passes silently). Pass
``zero_when_absent=`` to change the rule. A lookup may raise `ValueError` to explain why a stat
does not apply (``p95`` of a counter); the threshold then fails with that reason.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable

import attrs

from orchestrator.readout import format_in_unit, format_number

__all__ = [
    "Threshold",
    "ThresholdError",
    "ThresholdResult",
    "MetricsLookup",
    "parse_threshold",
    "evaluate",
    "zero_when_absent",
    "STATS",
    "OPERATORS",
]

MetricsLookup = Callable[[str, "str | None"], "float | None"]

STATS = ("p50", "p90", "p95", "p99", "min", "max", "mean", "count", "rate")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
    "!=": lambda a, b: not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
    "<": operator.lt,
    ">": operator.gt,
}
_UNITS = {"ms": 0.001, "s": 1.0, "%": 0.01}
_COUNT_WORDS = ("errors", "failures", "failed", "timeouts", "dropped", "rejected")

_METRIC = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_WORD = re.compile(r"[^\s<>=!]+")
_PERCENTILE = re.compile(r"p(\d{1,3}(?:\.\d+)?)")
_OP = re.compile(r"<=|>=|==|!=|<|>")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_UNIT = re.compile(r"\s*(ms|s|%)(?![A-Za-z0-9_])")


class ThresholdError(ValueError):
    """A threshold expression that does not parse. ``position`` is a 0-based offset in it."""

    def __init__(self, expression: str, position: int, reason: str) -> None:
        self.expression = expression
        self.position = position
        self.reason = reason
        super().__init__(f"{reason} in threshold {expression!r} (at character {position + 1})")


@attrs.frozen
class Threshold:
    metric: str
    #: None compares the plain value of a counter or gauge
    stat: str | None
    op: str
    #: in base units: seconds for ms/s, a fraction for %
    value: float
    source_text: str
    unit: str | None = None

    @property
    def percentile(self) -> float | None:
        """The percentile (0-100) when the stat is ``pNN``, else None."""
        if self.stat and self.stat[0] == "p":
            return float(self.stat[1:])
        return None

    def format_value(self, value: float) -> str:
        """``value`` in this threshold's unit, for reasons (``0.734 -> "734ms"``)."""
        if self.unit in _UNITS:
            return f"{format_number(value / _UNITS[self.unit])}{self.unit}"
        return format_number(value)

    def format_observed(self, value: float | None) -> str:
        """An observed value as the summary and the report show it (`readout.format_in_unit`:
        times in ms whatever the threshold's time unit)."""
        return format_in_unit(value, self.unit)

    def __str__(self) -> str:
        return self.source_text


@attrs.frozen
class ThresholdResult:
    threshold: Threshold
    #: the value compared (None when absent and not count-like, or when the lookup refused)
    observed: float | None
    passed: bool
    reason: str


def parse_threshold(text: str) -> Threshold:
    """Parse one expression; raise `ThresholdError` pointing at the offending character."""
    if not isinstance(text, str):
        raise ThresholdError(repr(text), 0, f"expected a threshold expression string, got {text!r}")
    pos = _skip(text, 0)
    metric_match = _METRIC.match(text, pos)
    if metric_match is None:
        raise ThresholdError(text, pos, "expected a metric name (e.g. turn.time_to_first_audio)")
    metric = metric_match.group()
    pos = _skip(text, metric_match.end())
    stat = None
    if _OP.match(text, pos) is None:
        word = _WORD.match(text, pos)
        if word is None:
            raise ThresholdError(text, pos, _expected_operator(text, pos))
        stat = _check_stat(text, pos, word.group())
        pos = _skip(text, word.end())
    op_match = _OP.match(text, pos)
    if op_match is None:
        raise ThresholdError(text, pos, _expected_operator(text, pos))
    op = op_match.group()
    pos = _skip(text, op_match.end())
    number = _NUMBER.match(text, pos)
    if number is None:
        raise ThresholdError(text, pos, "expected a number after the operator")
    value = float(number.group())
    pos = number.end()
    unit = None
    unit_match = _UNIT.match(text, pos)
    if unit_match is not None:
        unit = unit_match.group(1)
        value *= _UNITS[unit]
        pos = unit_match.end()
    pos = _skip(text, pos)
    if pos != len(text):
        raise ThresholdError(
            text, pos, f"unexpected {text[pos:]!r} after the value (units: ms, s, %)"
        )
    return Threshold(metric, stat, op, value, text.strip(), unit)


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _expected_operator(text: str, pos: int) -> str:
    if text.startswith("=", pos):
        return "expected a comparison operator; use == for equality"
    if pos >= len(text):
        return "expected a comparison operator (<, <=, >, >=, ==, !=) and a value"
    return "expected a comparison operator (<, <=, >, >=, ==, !=)"


def _check_stat(text: str, pos: int, word: str) -> str:
    if word in STATS:
        return word
    percentile = _PERCENTILE.fullmatch(word)
    if percentile is not None:
        if float(percentile.group(1)) <= 100:
            return word
        raise ThresholdError(text, pos, f"percentile {word!r} is above p100")
    close = difflib.get_close_matches(word, STATS, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ThresholdError(
        text, pos, f"unknown statistic {word!r}{hint} (expected pNN, min, max, mean, count or rate)"
    )


def zero_when_absent(metric: str, stat: str | None) -> bool:
    """The documented default rule: is an absent ``metric``/``stat`` a count of zero?"""
    if stat in ("count", "rate"):
        return True
    if stat is not None:
        return False
    last = metric.rsplit(".", 1)[-1]
    return any(last == w or last.endswith("_" + w) for w in _COUNT_WORDS)


def evaluate(
    thresholds: Iterable[Threshold],
    metrics_lookup: MetricsLookup,
    *,
    zero_when_absent: Callable[[str, str | None], bool] = zero_when_absent,
) -> list[ThresholdResult]:
    """Evaluate each threshold against ``metrics_lookup``; one result per threshold, in order."""
    results = []
    for t in thresholds:
        what = f"{t.metric} {t.stat}" if t.stat else t.metric
        try:
            observed = metrics_lookup(t.metric, t.stat)
        except ValueError as exc:
            results.append(ThresholdResult(t, None, False, f"{what}: {exc}"))
            continue
        if observed is None:
            if not zero_when_absent(t.metric, t.stat):
                results.append(ThresholdResult(t, None, False, f"{what} was not recorded"))
                continue
            observed = 0.0
        observed = float(observed)
        if math.isnan(observed):
            results.append(ThresholdResult(t, observed, False, f"{what} is NaN"))
            continue
        passed = OPERATORS[t.op](observed, t.value)
        verdict = "ok" if passed else "FAILED"
        reason = f"{what} = {t.format_value(observed)}, {verdict}: {t.op} {t.format_value(t.value)}"
        results.append(ThresholdResult(t, observed, passed, reason))
    return results
