"""One response of the deterministic model that calls a function tool (sans-I/O).

The sibling of :class:`~.response.ResponseRun` for a :class:`~.tools.ToolCall`, with the same
surface (``due``/``step``/``cancel``, ``item``, ``in_conversation``), so the session runs either
the same way. All steps are due at the start (arguments are text, not paced audio). Events, in
the hosted service's order:

* head: ``response.created``, ``response.output_item.added`` (a ``function_call`` item,
  ``in_progress``, empty ``arguments``), ``conversation.item.added`` (default conversation);
* one ``response.function_call_arguments.delta`` per piece of the arguments (split after each
  ``,``);
* tail: ``response.function_call_arguments.done`` (``name``, ``arguments``),
  ``response.output_item.done`` (``completed``), ``conversation.item.done``, ``response.done``
  (``output`` = the item), ``rate_limits.updated``.

:meth:`FunctionCallRun.cancel` emits the tail at once with the item ``incomplete`` and the
response ``cancelled``.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from standin.model.response import Emit, close_response, open_response

__all__ = ["FunctionCallRun", "function_call_item", "split_arguments"]

_PIECE = re.compile(r"[^,]+,?|,")


def split_arguments(arguments: str) -> list[str]:
    return _PIECE.findall(arguments) or [arguments]


def function_call_item(item_id: str, call_id: str, name: str) -> dict[str, Any]:
    return {"id": item_id, "object": "realtime.item", "type": "function_call", "status": "in_progress",
            "name": name, "call_id": call_id, "arguments": ""}


@attrs.define(eq=False)
class FunctionCallRun:
    response: dict[str, Any]
    item: dict[str, Any]
    arguments: str
    start: float
    previous_item_id: str | None
    in_conversation: bool
    usage: dict[str, Any]
    #: what ``_forget_finished`` of the session reads: a call has no audio
    modality: str = "function_call"
    audio_ms_sent: int = 0
    finished: bool = False
    _pieces: list[str] = attrs.field(factory=list)
    _next: int = -1  # -1: head; 0..n-1: argument pieces (the last one with the tail)

    def __attrs_post_init__(self) -> None:
        self._pieces = split_arguments(self.arguments)

    @property
    def id(self) -> str:
        return self.response["id"]

    @property
    def in_progress(self) -> bool:
        return not self.finished

    def due(self) -> float | None:
        return None if self.finished else self.start

    def step(self, emit: Emit) -> list[dict[str, Any]]:
        if self.finished:
            return []
        if self._next == -1:
            self._next = 0
            return self._head(emit)
        piece = self._pieces[self._next]
        self.item["arguments"] += piece
        out = [emit("response.function_call_arguments.delta", **self._ids(), delta=piece)]
        self._next += 1
        if self._next == len(self._pieces):
            out += self._tail(emit, "completed", None)
        return out

    def cancel(self, emit: Emit, reason: str) -> list[dict[str, Any]]:
        if self.finished:
            return []
        out = self._head(emit) if self._next == -1 else []
        return out + self._tail(emit, "cancelled", reason)

    def _ids(self) -> dict[str, Any]:
        return {"response_id": self.id, "item_id": self.item["id"], "output_index": 0,
                "call_id": self.item["call_id"]}

    def _head(self, emit: Emit) -> list[dict[str, Any]]:
        return open_response(self, emit)

    def _tail(self, emit: Emit, status: str, reason: str | None) -> list[dict[str, Any]]:
        self.finished = True
        out = [emit("response.function_call_arguments.done", **self._ids(), name=self.item["name"],
                    arguments=self.item["arguments"])]
        return out + close_response(self, emit, status, reason)
