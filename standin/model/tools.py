"""Function tools in the deterministic model: whether a response calls a tool, which one, with
which arguments, and what the model says once the client has sent the tool's output.

The rule (deterministic given the conversation, the tools and ``tool_choice``):

1. *The turn* is the items of the response's context after the last user message. When the turn
   already holds a ``function_call_output``, the model calls nothing: it answers with text that
   uses every output of the turn, ``"<name> returned <output>"`` (joined by ``"; "``), ``name``
   being the function whose ``function_call`` has the output's ``call_id``.
2. Otherwise a tool is called only if the effective tools (``response.create``'s ``tools``, else
   the session's) hold a ``type: function`` tool and ``tool_choice`` is not ``"none"``:
   a named choice (``{"type": "function", "name": N}``) calls ``N``; else the function whose
   name appears first in the last user message, as a whole word, case-insensitive
   ("call get_weather city=Paris", "what does get_weather say?"); else, with ``"required"``,
   the first function tool; else (``"auto"``) none, and the answer is ``"You said: …"``.
   One call per response (``parallel_tool_calls`` is accepted and ignored).
3. Arguments are a JSON object. Every ``key=value`` word of the user message (``key="two
   words"`` for spaces; an unquoted value ends at a space, without trailing ``.,;:!?``) whose key is one of the schema's ``properties`` (any key when the
   schema has no ``properties`` and does not set ``additionalProperties: false``) is taken,
   converted to the property's ``type`` when it converts (``integer``, ``number``,
   ``boolean``; otherwise the word stays a string). Each ``required`` property still missing
   gets, in order: its ``default``, its first ``enum`` value, or by type ``"example"``, ``1``,
   ``1``, ``true``, ``[]``, ``{}``, ``null`` (a string when the type is unknown).

Tool and ``tool_choice`` values are checked by :func:`check_tools` / :func:`check_tool_choice`
(a ``ClientError`` naming the ``param``); tools of other types (``mcp``) are kept, never called.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from standin.model.conversation import item_text
from standin.model.events import ClientError
from standin.model.response import reply_for
from standin.model.rules import Rule, Rules, fill, fill_args

__all__ = ["Planned", "ToolCall", "check_tool_choice", "check_tools", "plan_answer", "plan_reply",
           "tool_answer"]

_KEY_VALUE = re.compile(r"""(?<![\w.-])([A-Za-z_][\w.-]*)=(?:"([^"]*)"|'([^']*)'|(\S*[^\s.,;:!?]))""")
_FILL = {"string": "example", "integer": 1, "number": 1, "boolean": True, "array": [], "object": {},
         "null": None}


@attrs.frozen
class ToolCall:
    """What the model calls: a function name and its arguments (a JSON object, as text)."""

    name: str
    arguments: str


@attrs.frozen
class Planned:
    """What a response says (a :class:`ToolCall` or text) and the rule that decided it (None:
    the echo model, or the rules' ``default``), whose timing the response takes."""

    reply: ToolCall | str
    rule: Rule | None = None


# -- checks ------------------------------------------------------------------------------------

def check_tools(value: Any, param: str) -> list[dict[str, Any]]:
    """``tools`` as given, checked: a list of objects; function tools need a ``name`` and an
    object ``parameters`` (when given). Raises ClientError with ``param`` (e.g. ``session.tools``)."""
    if not isinstance(value, list):
        raise ClientError("invalid_type", "tools must be a list", param)
    names: set[str] = set()
    for i, tool in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(tool, dict):
            raise ClientError("invalid_type", "a tool must be an object", where)
        kind = tool.get("type", "function")
        if kind == "mcp":
            continue
        if kind != "function":
            raise ClientError("invalid_value", "tool type must be 'function' or 'mcp'", f"{where}.type")
        name = tool.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise ClientError("invalid_value", "a function tool needs a name of 1-64 letters, digits, "
                              "'_' or '-'", f"{where}.name")
        if name in names:
            raise ClientError("invalid_value", f"duplicate tool name '{name}'", f"{where}.name")
        names.add(name)
        if "parameters" in tool and tool["parameters"] is not None and not isinstance(tool["parameters"], dict):
            raise ClientError("invalid_type", "parameters must be a JSON schema object", f"{where}.parameters")
    return value


def check_tool_choice(value: Any, tools: list[dict[str, Any]], param: str) -> Any:
    """``tool_choice`` checked against ``tools``: ``auto``/``none``/``required``, a function
    named in ``tools``, or an ``mcp`` choice (kept, never acted on)."""
    if value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "mcp":
        return value
    if not isinstance(value, dict) or value.get("type") != "function" or not isinstance(value.get("name"), str):
        raise ClientError("invalid_value", "tool_choice must be 'auto', 'none', 'required' or "
                          "{'type': 'function', 'name': ...}", param)
    if value["name"] not in {t["name"] for t in _functions(tools)}:
        raise ClientError("invalid_value", f"tool_choice names function '{value['name']}', which is not "
                          "among the tools", f"{param}.name")
    return value


# -- the rule ------------------------------------------------------------------------------------

def plan_reply(
    context: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: Any, heard: dict[str, str],
    rules: Rules | None = None, instructions: str = "",
) -> ToolCall | str:
    """A :class:`ToolCall`, or the text the model says (see the module docstring); with
    ``rules``, those answer first (see `standin.model.rules`)."""
    return plan_answer(context, tools, tool_choice, heard, rules, instructions).reply


def plan_answer(
    context: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: Any, heard: dict[str, str],
    rules: Rules | None = None, instructions: str = "",
) -> Planned:
    """:func:`plan_reply` with the rule that answered (``instructions``: the session's, for
    rules limited to some)."""
    last_user = next((i for i in range(len(context) - 1, -1, -1) if context[i].get("role") == "user"), -1)
    turn = context[last_user + 1:]
    outputs = [item for item in turn if item.get("type") == "function_call_output"]
    user = context[last_user] if last_user >= 0 else None
    words = (item_text(user) or heard.get(user["id"], "")) if user else ""
    if outputs:
        if rules is not None:
            planned = _rules_after_call(rules, context, outputs, words, instructions)
            if planned is not None:
                return planned
        return Planned(tool_answer(context, outputs))
    if rules is not None:
        planned = _rules_plan(rules, words, tools, tool_choice, instructions)
        if planned is not None:
            return planned
    tool = _chosen(_functions(tools), tool_choice, words)
    if tool is None:
        return Planned(reply_for(words))
    return Planned(ToolCall(tool["name"], json.dumps(_arguments(tool.get("parameters"), words),
                                                     separators=(", ", ": "))))


def _rules_plan(rules: Rules, words: str, tools: Any, tool_choice: Any, instructions: str) -> Planned | None:
    callable_names = set() if tool_choice == "none" or isinstance(tool_choice, dict) \
        else {t["name"] for t in _functions(tools)}
    found = rules.answer(words, callable_names, instructions)
    if found is None:
        return None if rules.default is None else Planned(rules.default)
    rule, fields = found
    if rule.call_name is not None:
        return Planned(ToolCall(rule.call_name, json.dumps(fill_args(rule.call_args, fields),
                                                           separators=(", ", ": "))), rule)
    return Planned(fill(rule.say or "", fields), rule)


def _rules_after_call(rules: Rules, context: list[dict[str, Any]], outputs: list[dict[str, Any]],
                      words: str, instructions: str) -> Planned | None:
    calls = {item.get("call_id"): item for item in context if item.get("type") == "function_call"}
    said, answered_by = [], None
    for output in outputs:
        call = calls.get(output.get("call_id")) or {}
        found = rules.after_call(words, str(call.get("name")), instructions)
        if found is None:
            return None
        rule, fields = found
        try:
            args = json.loads(call.get("arguments") or "{}")
        except ValueError:
            args = {}
        values = {**(args if isinstance(args, dict) else {}), **fields, "output": output.get("output", "")}
        said.append(fill(rule.then or "", values))
        answered_by = answered_by or rule
    return Planned(" ".join(said), answered_by)


def tool_answer(context: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> str:
    names = {item.get("call_id"): item.get("name") for item in context if item.get("type") == "function_call"}
    said = [f"{names.get(o.get('call_id')) or 'the tool'} returned {o.get('output', '')}" for o in outputs]
    return "; ".join(said)


def _functions(tools: Any) -> list[dict[str, Any]]:
    return [t for t in tools or () if isinstance(t, dict) and t.get("type", "function") == "function"]


def _chosen(functions: list[dict[str, Any]], choice: Any, words: str) -> dict[str, Any] | None:
    if not functions or choice == "none":
        return None
    if isinstance(choice, dict):
        if choice.get("type") != "function":
            return None
        return next((t for t in functions if t["name"] == choice.get("name")), None)
    lowered = words.lower()
    found = []
    for tool in functions:
        match = re.search(rf"(?<![\w-]){re.escape(tool['name'].lower())}(?![\w-])", lowered)
        if match:
            found.append((match.start(), tool))
    if found:
        return min(found, key=lambda pair: pair[0])[1]
    return functions[0] if choice == "required" else None


def _arguments(schema: Any, words: str) -> dict[str, Any]:
    schema = schema if isinstance(schema, dict) else {}
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else None
    open_keys = props is None and schema.get("additionalProperties", True) is not False
    args: dict[str, Any] = {}
    for match in _KEY_VALUE.finditer(words):
        key = match.group(1)
        value = next(g for g in match.groups()[1:] if g is not None)
        if props is not None and key in props:
            args[key] = _convert(value, props[key])
        elif open_keys:
            args[key] = value
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    for key in required:
        if isinstance(key, str) and key not in args:
            args[key] = _fill((props or {}).get(key))
    return args


def _types(prop: Any) -> list[str]:
    kind = prop.get("type") if isinstance(prop, dict) else None
    return [kind] if isinstance(kind, str) else [k for k in kind or () if isinstance(k, str)]


def _convert(word: str, prop: Any) -> Any:
    for kind in _types(prop):
        if kind == "integer" and re.fullmatch(r"[+-]?\d+", word):
            return int(word)
        if kind == "number" and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", word):
            number = float(word)
            return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+", word) else number
        if kind == "boolean" and word.lower() in ("true", "false"):
            return word.lower() == "true"
    return word


def _fill(prop: Any) -> Any:
    if isinstance(prop, dict):
        if "default" in prop:
            return prop["default"]
        if isinstance(prop.get("enum"), list) and prop["enum"]:
            return prop["enum"][0]
    kinds = _types(prop)
    return _FILL.get(kinds[0], "example") if kinds else "example"
