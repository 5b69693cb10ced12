"""Answer checks: what the ``expect`` step checks on a finished turn, and the run's record of them.

The driver makes an `Answer` of every ``response.done`` (the words said, as text or audio
transcript, the function calls made, how long the first output took) and an ``expect`` step
checks the last one with :func:`evaluate`: one `Outcome` per check given (``said``,
``contains``, ``tool``, ``within``). `CheckLog` gathers the outcomes of a run per population,
step and check (passed and failed counts and a few of the words actually said when one failed)
for ``results.json`` and the report; the counts also go to the ``checks.passed`` /
``checks.failed`` counters.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from .steps import Expect, Repeat
from .thresholds import Threshold, parse_threshold

__all__ = ["implicit_check_threshold", "Answer", "Outcome", "CheckLog", "answer_of", "evaluate", "describe_pattern"]

#: failures kept per (population, step, check), with the words said
MAX_EXAMPLES = 3


@attrs.frozen
class Answer:
    """One finished turn as an ``expect`` sees it."""

    said: str
    calls: tuple[dict[str, Any], ...] = ()
    status: str = ""
    #: seconds from the turn's start to its first audio (else first text); None: no output
    first_output: float | None = None


def answer_of(response: dict[str, Any] | None, first_output: float | None) -> Answer:
    """The `Answer` of a ``response.done``'s ``response``: the words of its message items
    (output text, else audio transcript) and its completed function calls."""
    response = response or {}
    words: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in response.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            calls.append(item)
        elif item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict):
                    text = part.get("text") if part.get("text") is not None else part.get("transcript")
                    if isinstance(text, str) and text:
                        words.append(text)
    return Answer(" ".join(words), tuple(calls), str(response.get("status", "")), first_output)


@attrs.frozen
class Outcome:
    check: str  # what was checked, as written: "said /sunny/", "tool get_weather", "within 2s"
    passed: bool
    detail: str = ""  # why it failed


def describe_pattern(pattern: str) -> str:
    return pattern if _is_regex(pattern) else repr(pattern)


def _is_regex(pattern: str) -> bool:
    return len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/")


def _matches(pattern: str, text: str) -> bool:
    if _is_regex(pattern):
        return re.search(pattern[1:-1], text, re.IGNORECASE) is not None
    return pattern.casefold() in text.casefold()


def _call_args(call: dict[str, Any]) -> dict[str, Any] | None:
    try:
        value = json.loads(call.get("arguments") or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _tool_problem(expected: dict[str, Any], calls: tuple[dict[str, Any], ...]) -> str | None:
    name, args = expected["name"], expected.get("args") or {}
    named = [c for c in calls if c.get("name") == name]
    if not named:
        made = ", ".join(f"{c.get('name')}({c.get('arguments')})" for c in calls) or "none"
        return f"no call of {name!r} (calls made: {made})"
    problems = []
    for call in named:
        given = _call_args(call)
        if given is None:
            problems.append(f"arguments are not a JSON object: {call.get('arguments')!r}")
            continue
        wrong = [k for k, v in args.items() if given.get(k) != v]
        if not wrong:
            return None
        problems.append("; ".join(f"{k}={given.get(k)!r}, expected {args[k]!r}" for k in wrong))
    return f"{name!r} was called with " + " | ".join(problems)


def evaluate(step: Expect, answer: Answer) -> list[Outcome]:
    """One `Outcome` per check of ``step`` on ``answer``."""
    out = []
    heard = f"said {answer.said!r}" if answer.said else "said nothing"
    if step.said is not None:
        ok = _matches(step.said, answer.said)
        out.append(Outcome(f"said {describe_pattern(step.said)}", ok, "" if ok else heard))
    if step.contains is not None:
        ok = _matches(step.contains, answer.said)
        out.append(Outcome(f"contains {describe_pattern(step.contains)}", ok, "" if ok else heard))
    if step.tool is not None:
        problem = _tool_problem(step.tool, answer.calls)
        out.append(Outcome(f"tool {step.tool['name']}", problem is None,
                           f"{problem}; {heard}" if problem else ""))
    if step.within is not None:
        first = answer.first_output
        ok = first is not None and first <= step.within
        detail = "" if ok else ("no audio or text came" if first is None
                                else f"first output after {first:.3f}s")
        detail = f"{detail}; {heard}" if detail else ""
        out.append(Outcome(f"within {step.within:g}s", ok, detail))
    return out


@attrs.define
class _Tally:
    passed: int = 0
    failed: int = 0
    examples: list[str] = attrs.field(factory=list)


@attrs.define
class CheckLog:
    """The run's check outcomes per (population, step, check)."""

    _tallies: dict[tuple[str, str, str], _Tally] = attrs.field(factory=dict)

    def add(self, population: str, step: str, outcome: Outcome) -> None:
        tally = self._tallies.setdefault((population, step, outcome.check), _Tally())
        if outcome.passed:
            tally.passed += 1
        else:
            tally.failed += 1
            if len(tally.examples) < MAX_EXAMPLES:
                tally.examples.append(outcome.detail)

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"population": pop, "step": step, "check": check, "passed": t.passed,
                 "failed": t.failed, "failures": list(t.examples)}
                for (pop, step, check), t in self._tallies.items()]


def _has_expect(steps: Any) -> bool:
    return any(isinstance(s, Expect) or (isinstance(s, Repeat) and _has_expect(s.steps)) for s in steps)


def implicit_check_threshold(scenario: Any) -> tuple[Threshold, ...]:
    """``checks.failed == 0`` when the scenario's scripts have ``expect`` steps and none of its
    thresholds names ``checks.failed``: a failed check fails the run unless the file says how
    many may fail (``checks.failed < 5``, ``checks.failed{population=...} == 0``)."""
    if any(t.metric.split("{")[0] == "checks.failed" for t in scenario.thresholds):
        return ()
    if not any(_has_expect(steps) for steps in scenario.scripts.values()):
        return ()
    return (parse_threshold("checks.failed == 0"),)
