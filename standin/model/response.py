"""One response of the deterministic model, as a sequence of timed steps (sans-I/O).

The reply answers the last user words (``"You said: …"``) and is split into words. A
:class:`ResponseRun` emits, in PROTOCOL.md "Turn order":

* step *head* (due at start): ``response.created``, ``response.output_item.added``,
  ``conversation.item.added`` (default conversation only), ``response.content_part.added``;
* text: one step per word, ``response.output_text.delta``, all due at ``first``;
* audio: one step per chunk of the answer's :class:`~.utterance.Utterance`: the
  ``response.output_audio_transcript.delta`` of each word starting in that chunk, then its
  ``response.output_audio.delta``. Step *k* is due at ``first + k * pace`` so the I/O shell
  sends audio in real time (the echo model's tone: one word and ``chunk_ms`` a chunk);
* step *tail* (with the last word): the ``.done`` events, ``response.output_item.done``,
  ``conversation.item.done``, ``response.done`` (``completed``, with usage), ``rate_limits.updated``.

:meth:`ResponseRun.cancel` emits the tail at once with the output item ``incomplete`` and the
response ``cancelled`` (``status_details.reason`` = ``turn_detected`` or ``client_cancelled``).
Events hold snapshots: the item and response dicts are shared with the conversation and change.

``first`` (default: ``start``) is when the first delta is due: the rules model's time to first
audio. Speech still being synthesized is a :data:`~.utterance.Pending` the run resolves at its
first audio step (it may wait there for the synthesis; the rules' time to first audio usually
hides it), when the usage's audio tokens are set from the speech's real length.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import attrs
import pybase64

from standin.model.events import Base64Text, snapshot
from standin.model.utterance import Pending, Utterance

__all__ = ["ResponseRun", "rate_limits", "reply_for", "split_words", "set_audio_tokens"]

Emit = Callable[..., dict[str, Any]]
_WORD = re.compile(r"\S+\s*")


def reply_for(user_words: str | None) -> str:
    if not user_words:
        return "Hello from the embedded test model."
    return f"You said: {user_words}"


def split_words(text: str) -> list[str]:
    return _WORD.findall(text) or [text]


def set_audio_tokens(usage: dict[str, Any], tokens: int) -> None:
    """Set a usage's output audio tokens (and the totals) to ``tokens``."""
    details = usage["output_token_details"]
    change = tokens - details["audio_tokens"]
    details["audio_tokens"] = tokens
    usage["output_tokens"] += change
    usage["total_tokens"] += change


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
    #: the spoken answer (audio), or speech still being synthesized; None for text
    audio: Utterance | Pending | None
    chunk_ms: int
    start: float
    pace: float  # seconds between audio chunks
    previous_item_id: str | None
    in_conversation: bool
    usage: dict[str, Any]
    #: when the first delta is due (None: at start)
    first: float | None = None
    _next: int = -1  # -1: head; 0..n-1: words (text) or chunks (audio); then the tail
    _word: int = 0  # audio: the next word whose transcript delta is to go
    finished: bool = False
    audio_ms_sent: int = 0
    #: audio: the chunk each word went with (kept for truncation once resolved)
    word_chunk: tuple[int, ...] = ()

    def __attrs_post_init__(self) -> None:
        if isinstance(self.audio, Utterance):
            self.word_chunk = self.audio.word_chunk

    @property
    def id(self) -> str:
        return self.response["id"]

    @property
    def in_progress(self) -> bool:
        return not self.finished

    def due(self) -> float | None:
        if self.finished:
            return None
        if self._next == -1:
            return self.start
        first = self.start if self.first is None else self.first
        return first if self.modality == "text" else first + self._next * self.pace

    def utterance(self) -> Utterance:
        """The spoken answer (resolving speech being synthesized: it may wait for it)."""
        audio = self.audio
        if audio is None or isinstance(audio, Utterance):
            assert audio is not None, "a text response has no audio"
            return audio
        self.audio = resolved = audio()
        self.word_chunk = resolved.word_chunk
        set_audio_tokens(self.usage, resolved.audio_ms // 50)
        return resolved

    def step(self, emit: Emit) -> list[dict[str, Any]]:
        """The events of the next step (call when :meth:`due` has passed)."""
        if self.finished:
            return []
        if self._next == -1:
            self._next = 0
            return self._head(emit)
        if self.modality == "text":
            out = self._text(emit, self._next)
            steps = len(self.words)
        else:
            out = self._chunk(emit, self._next)
            steps = len(self.utterance().chunks)
        self._next += 1
        if self._next >= steps:
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

    def _text(self, emit: Emit, index: int) -> list[dict[str, Any]]:
        word = self.words[index]
        self.item["content"][0]["text"] += word
        return [emit("response.output_text.delta", **self._ids(), delta=word)]

    def _chunk(self, emit: Emit, index: int) -> list[dict[str, Any]]:
        """The transcript deltas of the words starting in chunk ``index`` (all that are left,
        with the last chunk), then the chunk."""
        spoken = self.utterance()
        content = self.item["content"][0]
        last = index == len(spoken.chunks) - 1
        out = []
        while self._word < len(self.words) and (last or spoken.word_chunk[self._word] <= index):
            word = self.words[self._word]
            content["transcript"] += word
            out.append(emit("response.output_audio_transcript.delta", **self._ids(), delta=word))
            self._word += 1
        self.audio_ms_sent += spoken.durations[index]
        out.append(emit("response.output_audio.delta", **self._ids(), delta=audio_text(spoken.chunks[index])))
        return out

    def _tail(self, emit: Emit, status: str, reason: str | None) -> list[dict[str, Any]]:
        self.finished = True
        self.audio = None
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


@functools.lru_cache(maxsize=256)
def audio_text(chunk: bytes) -> Base64Text:
    """A chunk of answer audio as a delta's base64 (``pybase64``: a fraction of the stdlib's
    time, the same text): the tone's chunks recur across a fleet's sessions
    (``standin.model.audio.Tone``), so each is encoded once."""
    return Base64Text(pybase64.b64encode_as_string(chunk))


def open_response(run: Any, emit: Emit) -> list[dict[str, Any]]:
    """The events that open a response with one output item (any run kind: a message or a
    function call): created, the item added to the output and, in a conversation, to it."""
    out = [
        emit("response.created", response=snapshot(run.response)),
        emit("response.output_item.added", response_id=run.id, output_index=0, item=snapshot(run.item)),
    ]
    if run.in_conversation:
        out.append(emit("conversation.item.added", previous_item_id=run.previous_item_id,
                        item=snapshot(run.item)))
    return out


def close_response(run: Any, emit: Emit, status: str, reason: str | None) -> list[dict[str, Any]]:
    """The events that close it: the item done (in the output and the conversation), then
    ``response.done`` with the final status and usage, then ``rate_limits.updated``."""
    run.item["status"] = "completed" if status == "completed" else "incomplete"
    out = [emit("response.output_item.done", response_id=run.id, output_index=0, item=snapshot(run.item))]
    if run.in_conversation:
        out.append(emit("conversation.item.done", previous_item_id=run.previous_item_id,
                        item=snapshot(run.item)))
    run.response["status"] = status
    run.response["status_details"] = None if reason is None else {"type": status, "reason": reason}
    run.response["output"] = [snapshot(run.item)]
    run.response["usage"] = run.usage
    out.append(emit("response.done", response=snapshot(run.response)))
    out.append(emit("rate_limits.updated", rate_limits=rate_limits(run.usage["total_tokens"])))
    return out
