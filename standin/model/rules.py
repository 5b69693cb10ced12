"""A stand-in model that answers by rules: ``rtfleet serve --model rules.yaml``, or
``target: {model: rules.yaml}`` in a scenario.

A rules file::

    rules:
      - when: /weather in (?P<city>[a-z]+)/        # a regex, searched case-insensitively
        call: {name: get_weather, args: {city: $city}}
        then: "It is $output in $city."            # the reply once the call's output came
        hear: ["what's the weather in paris", "what's the weather in london"]
      - keywords: [book, table]                    # every word present (any order)
        instructions: /restaurant/                 # only sessions whose instructions match
        say: "Booked. Anything else?"
        timing: {first_audio: 1.2s}                # this rule's answers (see below)
    default: "Sorry, I did not catch that."        # optional; without it, the echo model
    timing:                                        # optional; defaults in standin.model.timing
      first_audio: {median: 500ms, p90: 900ms}     # log-normal; or fixed (700ms); or {min:, max:}
      words_per_second: {median: 2.5, p90: 2.9}
      tool_decision: {median: 600ms, p90: 1.2s}
      seed: 0

The user's words (typed, or heard: see `standin.hearing`) are matched against the rules in
order; the first match answers. ``say`` is the reply text; ``call`` a function call (the
function must be among the response's tools and ``tool_choice`` not ``none``, otherwise the
rule is passed over). Templates (``say``, ``then``, string ``args`` values) use ``$name`` /
``${name}`` fields: the regex's named groups (``$1`` numbered ones), ``$said`` (the user's
words) and, in ``then``, ``$output`` (the ``function_call_output``) and the call's arguments.
After a call, the reply is the ``then`` of the rule that made it (matched again on the same user
words), else the echo model's ``"<name> returned <output>"``. No rule matching: ``default``, or
the echo model (``You said: …``, or a tool named in the words). ``hear`` lists the phrases the
hearing recognizer listens for (a rule without ``hear`` contributes its keywords as one phrase).
On GPT-Live (``standin.model.live``) a ``call`` rule makes a client delegation (its events carry
no task text) and the result appended for it is answered with the rule's ``then``.
``instructions`` (a /regex/ or plain text, searched case-insensitively like ``when``) limits a
rule to sessions whose instructions match it (Realtime: the session's ``instructions``; GPT-Live:
``session.start``'s), so one file can serve several agents: ``instructions: /booking/``.

``timing`` says how long answers take, drawn per response from a distribution (time to first
audio, words per second, the delay before a tool call): `standin.model.timing` states the forms
and the defaults with their sources. A rule's own ``timing`` replaces the fields it names for
its answers (``default`` and unmatched words use the file's); ``seed`` is the file's only.

A bad file raises `RulesError` with file, line and field: ``rules.yaml:4:11: rules[0].when: …``.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import attrs
import yaml

from standin.model.timing import DEFAULT_TIMING, FIELDS, Dist, Timing

__all__ = ["Rule", "Rules", "RulesError", "load_rules", "parse_rules"]

_RULE_KEYS = ("when", "keywords", "instructions", "say", "call", "then", "hear", "timing")
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*")
#: what a timing value may be: (lowest, highest) (durations in seconds)
_RANGE = {"duration": (0.0, 60.0), "rate": (0.5, 10.0)}


class RulesError(ValueError):
    """A rules file that cannot be used; the message says file, line, column and field."""


@attrs.frozen
class Rule:
    index: int
    pattern: re.Pattern[str] | None
    keywords: tuple[str, ...]
    say: str | None
    call_name: str | None
    call_args: dict[str, Any]
    then: str | None
    hear: tuple[str, ...]
    #: sessions whose instructions this searches (None: every session)
    instructions: re.Pattern[str] | None = None
    #: this rule's timing (the file's with the rule's own fields; None: the file's)
    timing: Timing | None = None

    def match(self, words: str, instructions: str = "") -> dict[str, str] | None:
        """Template fields when the rule matches ``words`` in a session with these
        ``instructions`` (None: it does not)."""
        if self.instructions is not None and self.instructions.search(instructions) is None:
            return None
        fields = {"said": words}
        if self.pattern is not None:
            found = self.pattern.search(words)
            if found is None:
                return None
            fields.update({str(i): g or "" for i, g in enumerate(found.groups(), 1)})
            fields.update({k: v or "" for k, v in found.groupdict().items()})
        if self.keywords:
            present = set(re.findall(r"[\w']+", words.casefold()))
            if not all(k in present for k in self.keywords):
                return None
        return fields

    def phrases(self) -> list[str]:
        """What a recognizer should listen for to hear this rule."""
        out = list(self.hear)
        if self.keywords and not out:  # a bare keyword list draws in any speech: hear: is better
            out.append(" ".join(self.keywords))
        return out


@attrs.frozen
class Rules:
    rules: tuple[Rule, ...]
    default: str | None = None
    source: str = ""
    timing: Timing = DEFAULT_TIMING

    def timing_of(self, rule: Rule | None) -> Timing:
        """The timing of an answer by ``rule`` (None: the default or the echo model)."""
        return rule.timing if rule is not None and rule.timing is not None else self.timing

    def phrases(self) -> list[str]:
        seen: dict[str, str] = {}
        for rule in self.rules:
            for phrase in rule.phrases():
                seen.setdefault(phrase.casefold().strip(), phrase.strip())
        return [p for p in seen.values() if p]

    def answer(self, words: str, function_names: set[str] | None,
               instructions: str = "") -> tuple[Rule, dict[str, str]] | None:
        """The first rule matching ``words`` that can answer (a call needs its function;
        ``function_names`` None: any call can be made, as a GPT-Live delegation)."""
        for rule in self.rules:
            if rule.call_name is not None and function_names is not None \
                    and rule.call_name not in function_names:
                continue
            fields = rule.match(words, instructions)
            if fields is not None:
                return rule, fields
        return None

    def after_call(self, words: str, name: str, instructions: str = "") -> tuple[Rule, dict[str, str]] | None:
        """The rule that called ``name`` for these words, when it has a ``then``."""
        for rule in self.rules:
            if rule.call_name == name and rule.then is not None:
                fields = rule.match(words, instructions)
                if fields is not None:
                    return rule, fields
        return None


def fill(template: str, fields: dict[str, Any]) -> str:
    """A template filled from ``fields``; unknown ``$names`` stay as written."""
    return string.Template(template).safe_substitute({k: v if isinstance(v, str) else str(v)
                                                      for k, v in fields.items()})


def fill_args(args: Any, fields: dict[str, str]) -> Any:
    if isinstance(args, str):
        return fill(args, fields)
    if isinstance(args, dict):
        return {k: fill_args(v, fields) for k, v in args.items()}
    if isinstance(args, list):
        return [fill_args(v, fields) for v in args]
    return args


# -- loading -----------------------------------------------------------------------------------

def load_rules(path: str | Path) -> Rules:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file: {exc.strerror or exc}") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, filename: str = "<rules>") -> Rules:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise RulesError(f"{where}: not valid YAML: {exc.problem}") from None
    if node is None:
        raise RulesError(f"{filename}:1:1: empty rules file (expected 'rules:', a list)")
    return _Reader(filename).document(node)


@attrs.define
class _Reader:
    filename: str

    def fail(self, node: yaml.Node, field: str, message: str) -> RulesError:
        mark = node.start_mark
        return RulesError(f"{self.filename}:{mark.line + 1}:{mark.column + 1}: {field}: {message}")

    def mapping(self, node: yaml.Node, field: str, allowed: tuple[str, ...]) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, field, "expected a mapping")
        out = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name not in allowed:
                raise self.fail(key, field, f"unknown key {name!r} (expected {', '.join(allowed)})")
            out[name] = (key, value)
        return out

    def string(self, node: yaml.Node, field: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str" or not node.value.strip():
            raise self.fail(node, field, "expected a non-empty string")
        return node.value

    def strings(self, node: yaml.Node, field: str) -> tuple[str, ...]:
        if isinstance(node, yaml.ScalarNode):
            return (self.string(node, field),)
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, field, "expected a string or a non-empty list of strings")
        return tuple(self.string(v, f"{field}[{i}]") for i, v in enumerate(node.value))

    def document(self, node: yaml.Node) -> Rules:
        top = self.mapping(node, "(top)", ("rules", "default", "timing"))
        if "rules" not in top:
            raise self.fail(node, "(top)", "missing required key 'rules' (a list)")
        rules_node = top["rules"][1]
        if not isinstance(rules_node, yaml.SequenceNode) or not rules_node.value:
            raise self.fail(rules_node, "rules", "expected a non-empty list of rules")
        fields = self.timing(top["timing"][1], "timing", with_seed=True) if "timing" in top else {}
        seed = fields.pop("seed", None)
        # a Timing of its own (its own count of sessions), whatever the file gives
        timing = Timing(**{**{k: getattr(DEFAULT_TIMING, k) for k in FIELDS}, **fields}, seed=seed)
        rules = tuple(self.rule(i, n, timing) for i, n in enumerate(rules_node.value))
        default = self.string(top["default"][1], "default") if "default" in top else None
        return Rules(rules, default, self.filename, timing)

    def pattern(self, node: yaml.Node, field: str) -> re.Pattern[str]:
        """A ``/regex/`` (or plain text, matched literally), case-insensitive."""
        source = self.string(node, field)
        if len(source) >= 2 and source.startswith("/") and source.endswith("/"):
            source = source[1:-1]
        else:
            source = re.escape(source)
        try:
            return re.compile(source, re.IGNORECASE)
        except re.error as exc:
            raise self.fail(node, field, f"not a valid regular expression: {exc}") from None

    def timing(self, node: yaml.Node, field: str, *, with_seed: bool = False) -> dict[str, Any]:
        """The fields of a ``timing:`` mapping: each a `Dist` (and ``seed``, an int)."""
        keys = self.mapping(node, field, (*FIELDS, "seed") if with_seed else tuple(FIELDS))
        out: dict[str, Any] = {}
        for name, (_, value) in keys.items():
            if name == "seed":
                if not isinstance(value, yaml.ScalarNode) or value.tag != "tag:yaml.org,2002:int":
                    raise self.fail(value, f"{field}.seed", "expected a whole number")
                out["seed"] = int(value.value, 0)
            else:
                out[name] = self.dist(value, f"{field}.{name}", FIELDS[name])
        return out

    def dist(self, node: yaml.Node, field: str, kind: str) -> Dist:
        """A fixed value, ``{median, p90[, min, max]}`` (log-normal) or ``{min, max}`` (uniform)."""
        if isinstance(node, yaml.ScalarNode):
            return Dist.fixed(self.amount(node, field, kind))
        keys = self.mapping(node, field, ("median", "p90", "min", "max"))
        value = {name: self.amount(v, f"{field}.{name}", kind) for name, (_, v) in keys.items()}
        if "median" in value or "p90" in value:
            if "median" not in value or "p90" not in value:
                raise self.fail(node, field, "a log-normal distribution needs both 'median' and 'p90'")
            if value["p90"] <= value["median"]:
                raise self.fail(keys["p90"][1], f"{field}.p90", "must be above the median")
            if kind == "rate" and value["median"] <= 0:
                raise self.fail(keys["median"][1], f"{field}.median", "must be above 0")
            low, high = value.get("min", _RANGE[kind][0]), value.get("max", _RANGE[kind][1])
            if not low <= value["median"] <= high:
                raise self.fail(node, field, "the median must lie within min..max")
            return Dist.lognormal(value["median"], value["p90"], low, high)
        if "min" not in value or "max" not in value:
            raise self.fail(node, field, "expected a value, {median, p90} (log-normal) or {min, max} (uniform)")
        if value["max"] < value["min"]:
            raise self.fail(keys["max"][1], f"{field}.max", "must not be below min")
        return Dist(value["min"], value["max"])

    def amount(self, node: yaml.Node, field: str, kind: str) -> float:
        """A duration in seconds (``500ms``, ``1.2s``, ``0.5``) or a rate (a number)."""
        found = _DURATION.fullmatch(node.value) if isinstance(node, yaml.ScalarNode) else None
        if found is None or (kind == "rate" and found.group(2)):
            want = "a duration (500ms, 1.2s, or seconds)" if kind == "duration" else "a number (words a second)"
            raise self.fail(node, field, f"expected {want}")
        value = float(found.group(1)) / (1000 if found.group(2) == "ms" else 1)
        low, high = _RANGE[kind]
        if not low <= value <= high or (kind == "rate" and value <= 0):
            unit = "s" if kind == "duration" else " words a second"
            raise self.fail(node, field, f"must be within {low:g}..{high:g}{unit}")
        return value

    def rule(self, index: int, node: yaml.Node, timing: Timing = DEFAULT_TIMING) -> Rule:
        field = f"rules[{index}]"
        keys = self.mapping(node, field, _RULE_KEYS)
        if "when" not in keys and "keywords" not in keys:
            raise self.fail(node, field, "a rule needs 'when' (a /regex/) or 'keywords' (words)")
        if ("say" in keys) == ("call" in keys):
            raise self.fail(node, field, "a rule answers with exactly one of 'say' (text) or 'call' (a tool)")
        pattern = self.pattern(keys["when"][1], f"{field}.when") if "when" in keys else None
        instructions = self.pattern(keys["instructions"][1], f"{field}.instructions") \
            if "instructions" in keys else None
        own = timing.merged(self.timing(keys["timing"][1], f"{field}.timing")) if "timing" in keys else None
        keywords = tuple(k.casefold() for k in self.strings(keys["keywords"][1], f"{field}.keywords")) \
            if "keywords" in keys else ()
        say = self.string(keys["say"][1], f"{field}.say") if "say" in keys else None
        call_name, call_args = None, {}
        if "call" in keys:
            call = self.mapping(keys["call"][1], f"{field}.call", ("name", "args"))
            if "name" not in call:
                raise self.fail(keys["call"][1], f"{field}.call", "missing required key 'name'")
            call_name = self.string(call["name"][1], f"{field}.call.name")
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", call_name):
                raise self.fail(call["name"][1], f"{field}.call.name", "a function name is 1-64 letters, digits, '_' or '-'")
            if "args" in call:
                args_node = call["args"][1]
                if not isinstance(args_node, yaml.MappingNode):
                    raise self.fail(args_node, f"{field}.call.args", "expected a mapping of argument values")
                call_args = yaml.SafeLoader(yaml.serialize(args_node)).get_single_data()
        then = self.string(keys["then"][1], f"{field}.then") if "then" in keys else None
        if then is not None and call_name is None:
            raise self.fail(keys["then"][0], f"{field}.then", "'then' is the reply after a call: it needs 'call'")
        hear = tuple(self.strings(keys["hear"][1], f"{field}.hear")) if "hear" in keys else ()
        for key in ("say", "then"):
            if key in keys and not string.Template(keys[key][1].value).is_valid():
                raise self.fail(keys[key][1], f"{field}.{key}", "a '$' must start a field ($city, ${city}); write $$ for a dollar")
        return Rule(index, pattern, keywords, say, call_name, call_args, then, hear, instructions, own)
