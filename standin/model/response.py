"""One response of the deterministic model, as a sequence of timed steps (sans-I/O).

The reply answers the last user words (``"You said: …"``) and is split into words. A
:class:`ResponseRun` emits, in PROTOCOL.md "Turn order":

* step *head* (due at start): ``response.created``, ``response.output_item.added``,
  ``conversation.item.added`` (default conversation only), ``response.content_part.added``;
* one step per word: text -> ``response.output_text.delta``; audio ->
  ``response.output_audio_transcript.delta`` then ``response.output_audio.delta`` (one chunk of
  ``chunk_ms`` of tone a word). Text steps are all due at start; audio step *k* is due at
  ``start + k * pace`` so the I/O shell sends audio in real time;
* step *tail* (with the last word): the ``.done`` events, ``response.output_item.done``,
  ``conversation.item.done``, ``response.done`` (``completed``, with usage), ``rate_limits.updated``.

:meth:`ResponseRun.cancel` emits the tail at once with the output item ``incomplete`` and the
response ``cancelled`` (``status_details.reason`` = ``turn_detected`` or ``client_cancelled``).
Events hold snapshots: the item and response dicts are shared with the conversation and change.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["ResponseRun", "rate_limits", "reply_for", "split_words"]

Emit = Callable[..., dict[str, Any]]
_WORD = re.compile(r"\S+\s*")


def reply_for(user_words: str | None) -> str:
    if not user_words:
        return "Hello from the embedded test model."
    return f"You said: {user_words}"


def split_words(text: str) -> list[str]:
    return _WORD.findall(text) or [text]


def rate_limits(tokens_used: int) -> list[dict[str, Any]]:
    return [
        {"name": "requests", "limit": 10_000, "remaining": 9_999, "reset_seconds": 0.006},
        {"name": "tokens", "limit": 2_000_000, "remaining": max(0, 2_000_000 - tokens_used),
         "reset_seconds": 0.5},
    ]


@attrs.define(eq=False)
class ResponseRun:
    response: dict[str, Any]
    item: dict[str, Any]
    modality: str  # "text" | "audio"
    words: list[str]
    audio: list[bytes]  # one chunk a word (audio), empty (text)
    chunk_ms: int
    start: float
    pace: float  # seconds between audio chunks
    previous_item_id: str | None
    in_conversation: bool
    usage: dict[str, Any]
    _next: int = -1  # -1: head; 0..n-1: words; n: tail
    finished: bool = False
    audio_ms_sent: int = 0

    @property
    def id(self) -> str:
        return self.response["id"]

    @property
    def in_progress(self) -> bool:
        return not self.finished

    def due(self) -> float | None:
        if self.finished:
            return None
        if self._next <= 0 or self.modality == "text":
            return self.start
        return self.start + min(self._next, len(self.words) - 1) * self.pace

    def step(self, emit: Emit) -> list[dict[str, Any]]:
        """The events of the next step (call when :meth:`due` has passed)."""
        if self.finished:
            return []
        if self._next == -1:
            self._next = 0
            return self._head(emit)
        out = self._word(emit, self._next)
        self._next += 1
        if self._next == len(self.words):
            out += self._tail(emit, "completed", None)
        return out

    def cancel(self, emit: Emit, reason: str) -> list[dict[str, Any]]:
        if self.finished:
            return []
        out = self._head(emit) if self._next == -1 else []
        return out + self._tail(emit, "cancelled", reason)

    # -- steps ---------------------------------------------------------------------------------

    def _ids(self) -> dict[str, Any]:
        return {"response_id": self.id, "item_id": self.item["id"], "output_index": 0, "content_index": 0}

    def _part(self) -> dict[str, Any]:
        content = self.item["content"][0]
        if self.modality == "text":
            return {"type": "text", "text": content["text"]}
        return {"type": "audio", "transcript": content["transcript"]}

    def _head(self, emit: Emit) -> list[dict[str, Any]]:
        out = open_response(self, emit)
        if self.modality == "text":
            self.item["content"].append({"type": "output_text", "text": ""})
        else:
            self.item["content"].append({"type": "output_audio", "transcript": ""})
        out.append(emit("response.content_part.added", **self._ids(), part=self._part()))
        return out

    def _word(self, emit: Emit, index: int) -> list[dict[str, Any]]:
        word = self.words[index]
        content = self.item["content"][0]
        if self.modality == "text":
            content["text"] += word
            return [emit("response.output_text.delta", **self._ids(), delta=word)]
        content["transcript"] += word
        self.audio_ms_sent += self.chunk_ms
        return [
            emit("response.output_audio_transcript.delta", **self._ids(), delta=word),
            emit("response.output_audio.delta", **self._ids(), delta=base64.b64encode(self.audio[index]).decode()),
        ]

    def _tail(self, emit: Emit, status: str, reason: str | None) -> list[dict[str, Any]]:
        self.finished = True
        self.audio = []
        content = self.item["content"][0]
        if self.modality == "text":
            out = [emit("response.output_text.done", **self._ids(), text=content["text"])]
        else:
            out = [
                emit("response.output_audio.done", **self._ids()),
                emit("response.output_audio_transcript.done", **self._ids(), transcript=content["transcript"]),
            ]
        out.append(emit("response.content_part.done", **self._ids(), part=self._part()))
        return out + close_response(self, emit, status, reason)


def open_response(run: Any, emit: Emit) -> list[dict[str, Any]]:
    """The events that open a response with one output item (any run kind: a message or a
    function call): created, the item added to the output and, in a conversation, to it."""
    out = [
        emit("response.created", response=copy.deepcopy(run.response)),
        emit("response.output_item.added", response_id=run.id, output_index=0, item=copy.deepcopy(run.item)),
    ]
    if run.in_conversation:
        out.append(emit("conversation.item.added", previous_item_id=run.previous_item_id,
                        item=copy.deepcopy(run.item)))
    return out


def close_response(run: Any, emit: Emit, status: str, reason: str | None) -> list[dict[str, Any]]:
    """The events that close it: the item done (in the output and the conversation), then
    ``response.done`` with the final status and usage, then ``rate_limits.updated``."""
    run.item["status"] = "completed" if status == "completed" else "incomplete"
    out = [emit("response.output_item.done", response_id=run.id, output_index=0, item=copy.deepcopy(run.item))]
    if run.in_conversation:
        out.append(emit("conversation.item.done", previous_item_id=run.previous_item_id,
                        item=copy.deepcopy(run.item)))
    run.response["status"] = status
    run.response["status_details"] = None if reason is None else {"type": status, "reason": reason}
    run.response["output"] = [copy.deepcopy(run.item)]
    run.response["usage"] = run.usage
    out.append(emit("response.done", response=copy.deepcopy(run.response)))
    out.append(emit("rate_limits.updated", rate_limits=rate_limits(run.usage["total_tokens"])))
    return out
