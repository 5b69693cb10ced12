"""The default conversation of one session: items in order, and client item checking.

Items are GA conversation items as plain dicts (``{id, object: "realtime.item", type, status,
role?, content?, …}``). :class:`Conversation` keeps them in order and places a new item after a
``previous_item_id`` (``"root"`` means first; none means last). :func:`item_from_client` turns a
``conversation.item.create`` item into a stored item or raises :class:`~.events.ClientError`.
Input audio is never stored, only its length, which the model needs for its transcript.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from standin.model.audio import AudioFormat
from standin.model.events import ClientError

__all__ = ["Conversation", "item_from_client", "item_text"]

_CONTENT_TYPES = {
    "user": ("input_text", "input_audio", "input_image"),
    "system": ("input_text",),
    "assistant": ("output_text", "output_audio"),
}


class Conversation:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def get(self, item_id: str) -> dict[str, Any] | None:
        return self._by_id.get(item_id)

    def last_id(self) -> str | None:
        return self.items[-1]["id"] if self.items else None

    def insert(self, item: dict[str, Any], previous_item_id: str | None = None) -> str | None:
        """Place ``item``; returns the id of the item now before it (None when first)."""
        if previous_item_id is None:
            index = len(self.items)
        elif previous_item_id == "root":
            index = 0
        elif previous_item_id in self._by_id:
            index = self.items.index(self._by_id[previous_item_id]) + 1
        else:
            raise ClientError(
                "item_not_found",
                f"previous_item_id '{previous_item_id}' does not exist",
                "previous_item_id",
            )
        self.items.insert(index, item)
        self._by_id[item["id"]] = item
        return self.items[index - 1]["id"] if index > 0 else None

    def delete(self, item_id: str) -> None:
        item = self._by_id.pop(item_id)
        self.items.remove(item)


def _content_error(index: int, message: str, field: str = "type") -> ClientError:
    return ClientError("invalid_value", message, f"item.content[{index}].{field}")


def item_from_client(raw: Any, new_id: str, fmt: AudioFormat) -> tuple[dict[str, Any], dict[int, float]]:
    """A stored item from a client item, and the input-audio milliseconds of its parts by index."""
    if not isinstance(raw, dict):
        raise ClientError("missing_required_parameter", "item is required", "item")
    item_id = raw.get("id") or new_id
    if not isinstance(item_id, str):
        raise ClientError("invalid_type", "item.id must be a string", "item.id")
    kind = raw.get("type", "message")
    base = {"id": item_id, "object": "realtime.item", "type": kind, "status": "completed"}
    audio_ms: dict[int, float] = {}
    if kind == "message":
        role = raw.get("role")
        if role not in _CONTENT_TYPES:
            raise ClientError("invalid_value", "item.role must be user, assistant or system", "item.role")
        content = raw.get("content")
        if not isinstance(content, list):
            raise ClientError("missing_required_parameter", "item.content must be a list", "item.content")
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in _CONTENT_TYPES[role]:
                raise _content_error(i, f"content type for role {role} must be one of {_CONTENT_TYPES[role]}")
            parts.append(_part(i, part, fmt, audio_ms))
        return base | {"role": role, "content": parts}, audio_ms
    if kind == "function_call":
        for key in ("name", "arguments"):
            if not isinstance(raw.get(key), str):
                raise ClientError("missing_required_parameter", f"item.{key} must be a string", f"item.{key}")
        call = {"name": raw["name"], "arguments": raw["arguments"], "call_id": raw.get("call_id")}
        return base | call, audio_ms
    if kind == "function_call_output":
        for key in ("call_id", "output"):
            if not isinstance(raw.get(key), str):
                raise ClientError("missing_required_parameter", f"item.{key} must be a string", f"item.{key}")
        return base | {"call_id": raw["call_id"], "output": raw["output"]}, audio_ms
    raise ClientError(
        "invalid_value", "item.type must be message, function_call or function_call_output", "item.type"
    )


def _part(index: int, part: dict[str, Any], fmt: AudioFormat, audio_ms: dict[int, float]) -> dict[str, Any]:
    kind = part["type"]
    if kind in ("input_text", "output_text"):
        if not isinstance(part.get("text"), str):
            raise _content_error(index, "text must be a string", "text")
        return {"type": kind, "text": part["text"]}
    if kind == "input_image":
        if not isinstance(part.get("image_url"), str):
            raise _content_error(index, "image_url must be a string", "image_url")
        return {"type": kind, "image_url": part["image_url"], "detail": part.get("detail", "auto")}
    # input_audio / output_audio: keep the transcript, measure and drop the audio.
    transcript = part.get("transcript")
    if transcript is not None and not isinstance(transcript, str):
        raise _content_error(index, "transcript must be a string", "transcript")
    if "audio" in part:
        try:
            audio_ms[index] = fmt.duration_ms(len(base64.b64decode(part["audio"], validate=True)))
        except (binascii.Error, TypeError, ValueError):
            raise _content_error(index, "audio must be base64", "audio") from None
    return {"type": kind, "transcript": transcript}


def item_text(item: dict[str, Any]) -> str:
    """The words of an item: its texts and transcripts joined (empty when it has none)."""
    texts = []
    for part in item.get("content") or ():
        value = part.get("text") if part.get("text") is not None else part.get("transcript")
        if value:
            texts.append(value)
    if item.get("type") == "function_call_output":
        texts.append(item.get("output", ""))
    return " ".join(texts)
