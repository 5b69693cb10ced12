"""The function calls one scripted session receives, for the ``expect_tool_call`` and
``answer_tool_call`` steps (see `steps`).

The driver hands every completed ``function_call`` item (``response.output_item.done``) to
:meth:`ToolCalls.arrived`; a step takes the oldest not yet taken (:meth:`ToolCalls.take`,
waiting when there is none), checks it (:func:`mismatch`) and answers it (:func:`output_text`).
"""

from __future__ import annotations

import collections
import json
import string
from typing import Any

import attrs
import trio

__all__ = ["ToolCalls", "mismatch", "output_text"]


@attrs.define(eq=False)
class ToolCalls:
    _waiting: collections.deque = attrs.field(factory=collections.deque)
    _changed: trio.Event = attrs.field(factory=trio.Event)
    #: the call the last ``expect_tool_call`` took: what ``answer_tool_call`` answers
    current: dict[str, Any] | None = None

    def arrived(self, item: dict[str, Any]) -> None:
        self._waiting.append(item)
        self._changed.set()
        self._changed = trio.Event()

    async def take(self, timeout: float) -> dict[str, Any] | None:
        """The oldest call not taken yet, waiting at most ``timeout`` for one (None: none came)."""
        with trio.move_on_after(timeout):
            while not self._waiting:
                await self._changed.wait()
        return self._waiting.popleft() if self._waiting else None


def _arguments(call: dict[str, Any]) -> dict[str, Any] | None:
    try:
        value = json.loads(call.get("arguments") or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def mismatch(call: dict[str, Any], name: str | None, arguments: dict[str, Any]) -> str | None:
    """Why ``call`` is not the expected one, or None when it is."""
    if name is not None and call.get("name") != name:
        return f"expected a call of {name!r}, got {call.get('name')!r}"
    given = _arguments(call)
    if given is None:
        return f"{call.get('name')!r} was called with arguments that are not a JSON object: " \
               f"{call.get('arguments')!r}"
    for key, expected in arguments.items():
        if key not in given:
            return f"{call.get('name')!r} was called without argument {key!r} (got {given})"
        if given[key] != expected:
            return f"{call.get('name')!r} was called with {key}={given[key]!r}, expected {expected!r}"
    return None


def output_text(output: Any, call: dict[str, Any]) -> str:
    """The ``output`` of the call's ``function_call_output``: JSON text, or a string template
    filled from the call (raises KeyError naming a placeholder the call lacks)."""
    if not isinstance(output, str):
        return json.dumps(output)
    values = {"name": call.get("name", ""), "call_id": call.get("call_id", "")}
    for key, value in (_arguments(call) or {}).items():
        values[key] = value if isinstance(value, str) else json.dumps(value)
    return string.Template(output).substitute(values)
