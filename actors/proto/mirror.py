"""A client-side mirror of the server's conversation, so it can be rebuilt after a reconnect.

The service has no resumption: a new connection is a new, empty session.  The mirror follows
the server events of every connection and can turn what it knows into the
``conversation.item.create`` events that rebuild the conversation (:meth:`replay_events`).

What it tracks:

* items, ordered as the server orders them: an item goes after its ``previous_item_id``
  (``"root"`` puts it first; a missing, ``null`` or unknown previous id appends it), upserted
  by ``conversation.item.added`` / ``.done`` / ``.created`` and ``response.output_item.done``
  (an update keeps the item's place), removed by ``conversation.item.deleted``;
* transcripts and texts by ``(item_id, content_index)``: input transcription
  (``conversation.item.input_audio_transcription.completed``) and the final assistant text
  (``response.output_text.done``, ``response.output_audio_transcript.done``).  They overlay the
  items, so a later ``conversation.item.done`` without a transcript does not erase one;
* truncation (``conversation.item.truncated``): audio beyond ``audio_end_ms`` is dropped
  from the stored item, the transcript is kept;
* the active response (``response.created`` → its id, ``response.done`` → none) and the items
  it produced.  Out-of-band responses (``conversation_id: null``) are not conversation state.

Responses are atomic across a reconnect: :meth:`connection_lost` drops the items of a
response that was still active (its ``response.done`` was never seen), because the client
re-issues that response on the next connection and a half-received answer must not be
replayed next to the new one.

Received event dicts are never mutated (they are also handed to subscribers); changed items
are shallow copies.

Memory bound: everything the mirror keeps grows with the conversation, so it is bounded by
``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`, 4 MiB; ``None`` for no bound).  :attr:`size`
is the retained data measured as JSON text (UTF-8 bytes of every string and number, plus
quotes, separators and brackets): items, tracked texts, and the ids kept for the active and
out-of-band responses.  After every event that made it grow past the bound, the *oldest*
data is evicted until it fits again: texts of items the mirror does not know first, then
whole items in conversation order (with their texts), then response bookkeeping.  An evicted
item is simply no longer replayed (the conversation is restored from the first item kept, as
``root``).  Evictions are counted (:attr:`evicted_items`, :attr:`evicted_bytes`) and reported
once by :meth:`take_eviction` so the owner can tell the session; a :class:`ClientCore
<actors.proto.client.ClientCore>` sets ``max_bytes`` from its ``max_restore_bytes``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Callable

import attrs

__all__ = ["SessionMirror", "DEFAULT_MAX_BYTES", "HANDLED_TYPES", "json_size"]

#: Default bound of a mirror's retained data (:attr:`SessionMirror.size`), in bytes.
DEFAULT_MAX_BYTES = 4 * 2**20


def json_size(value: Any) -> int:
    """The length in UTF-8 bytes of ``value`` as compact JSON, estimated without encoding it
    (strings are counted unescaped) and without recursion (any nesting depth)."""
    size = 0
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        v = pop()
        t = type(v)
        if t is str:
            size += (len(v) if v.isascii() else len(v.encode("utf-8", "surrogatepass"))) + 2
        elif t is dict:
            size += 2 * len(v) + 1 if v else 2  # braces, a ':' per key, ',' between
            for key, item in v.items():
                push(key if type(key) is str else str(key))
                push(item)
        elif t is list or t is tuple:
            size += len(v) + 1 if v else 2
            stack.extend(v)
        elif v is None or v is True:
            size += 4
        elif v is False:
            size += 5
        else:
            size += len(repr(v))
    return size


def _id_size(item_id: str) -> int:
    return json_size(item_id) + 1

_AUDIO_PARTS = frozenset({"input_audio", "output_audio"})
_TEXT_PARTS = frozenset({"input_text", "output_text"})
_SERVER_ONLY = ("object", "status")
_IMAGE_KEYS = ("type", "image_url", "detail")


@attrs.define
class SessionMirror:
    """The conversation as the client knows it; feed it every server event."""

    #: Bytes of raw output audio per millisecond, for truncation (48: PCM16 at 24 kHz).
    output_bytes_per_ms: int = 48
    active_response_id: str | None = None
    #: Items skipped by the last :meth:`replay_events` (nothing usable to replay).
    last_skipped: int = 0
    #: Items dropped by :meth:`connection_lost` since the mirror was made.
    discarded: int = 0
    #: Bound of :attr:`size` in bytes (``None``: unbounded); see the module docstring.
    max_bytes: int | None = attrs.field(
        default=DEFAULT_MAX_BYTES,
        validator=attrs.validators.optional(
            [attrs.validators.instance_of(int), attrs.validators.ge(1)]
        ),
    )
    #: Items evicted by the memory bound since the mirror was made, and the bytes freed.
    evicted_items: int = 0
    evicted_bytes: int = 0
    _items: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    _order: list[str] = attrs.field(factory=list)
    _texts: dict[str, dict[int, str]] = attrs.field(factory=dict)
    # insertion-ordered sets of ids (dict keys)
    _response_items: dict[str, dict[str, None]] = attrs.field(factory=dict)
    _out_of_band: dict[str, None] = attrs.field(factory=dict)
    # measured sizes: per item (with its id), per item's texts, and the running total
    _item_bytes: dict[str, int] = attrs.field(factory=dict)
    _text_bytes: dict[str, int] = attrs.field(factory=dict)
    _size: int = 0
    _unreported: tuple[int, int] = (0, 0)  # (items, bytes) evicted since take_eviction

    # -- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._order)

    @property
    def size(self) -> int:
        """The retained data in bytes, as measured for :attr:`max_bytes`."""
        return self._size

    @property
    def eviction_due(self) -> bool:
        """Something was evicted that :meth:`take_eviction` has not reported yet."""
        items, freed = self._unreported
        return bool(items or freed)

    def take_eviction(self) -> dict[str, int] | None:
        """What the bound evicted since the last call (``None`` if nothing):
        ``{"evicted_items", "evicted_bytes", "size", "max_bytes"}``."""
        items, freed = self._unreported
        if not items and not freed:
            return None
        self._unreported = (0, 0)
        return {"evicted_items": items, "evicted_bytes": freed, "size": self._size,
                "max_bytes": self.max_bytes or 0}

    @property
    def ids(self) -> list[str]:
        """Item ids in conversation order (a copy)."""
        return list(self._order)

    def items(self) -> list[dict[str, Any]]:
        """Items in conversation order, as last received (do not mutate them)."""
        return [self._items[i] for i in self._order]

    def item(self, item_id: str) -> dict[str, Any] | None:
        return self._items.get(item_id)

    def text(self, item_id: str, content_index: int = 0) -> str | None:
        """The tracked transcript/text of one content part, if any."""
        return self._texts.get(item_id, {}).get(content_index)

    # -- server events -------------------------------------------------------------------

    def apply_server(self, event: dict[str, Any]) -> None:
        """Update the mirror from one (checked) GA server event; other events are ignored."""
        handler = _HANDLERS.get(event["type"])
        if handler is not None:
            handler(self, event)
            if self.max_bytes is not None and self._size > self.max_bytes:
                self.trim(self.max_bytes)

    def _on_item(self, event: dict[str, Any]) -> None:
        self._upsert(event["item"], event.get("previous_item_id"))

    def _on_output_item_added(self, event: dict[str, Any]) -> None:
        response_id = event["response_id"]
        if response_id not in self._out_of_band:
            self._note_response_item(response_id, event["item"]["id"])

    def _on_output_item_done(self, event: dict[str, Any]) -> None:
        response_id = event["response_id"]
        if response_id in self._out_of_band:
            return
        item = event["item"]
        self._note_response_item(response_id, item["id"])
        self._upsert(item, None)

    def _note_response_item(self, response_id: str, item_id: str) -> None:
        ids = self._response_items.get(response_id)
        if ids is None:
            ids = self._response_items[response_id] = {}
            self._size += _id_size(response_id)
        if item_id not in ids:
            ids[item_id] = None
            self._size += _id_size(item_id)

    def _on_deleted(self, event: dict[str, Any]) -> None:
        self._remove(event["item_id"])

    def _on_truncated(self, event: dict[str, Any]) -> None:
        item = self._items.get(event["item_id"])
        content = item.get("content") if item is not None else None
        index = event["content_index"]
        if not isinstance(content, list) or not 0 <= index < len(content):
            return
        part = content[index]
        if not isinstance(part, dict) or not isinstance(part.get("audio"), str):
            return
        keep = max(0, event["audio_end_ms"]) * self.output_bytes_per_ms
        try:
            audio = base64.b64decode(part["audio"], validate=True)
        except (binascii.Error, ValueError):
            new_part = {k: v for k, v in part.items() if k != "audio"}
        else:
            if len(audio) <= keep:
                return
            new_part = {**part, "audio": base64.b64encode(audio[:keep]).decode("ascii")}
        new_content = list(content)
        new_content[index] = new_part
        self._store(event["item_id"], {**item, "content": new_content})

    def _set_text(self, event: dict[str, Any], key: str) -> None:
        item_id, index, text = event["item_id"], event["content_index"], event[key]
        texts = self._texts.get(item_id)
        change = 0
        if texts is None:
            texts = self._texts[item_id] = {}
            self._text_bytes[item_id] = 0
            change += _id_size(item_id)
        old = texts.get(index)
        if old is None:
            change += json_size(text) + len(str(index)) + 3  # "index":text,
        else:
            change += json_size(text) - json_size(old)
        texts[index] = text
        self._text_bytes[item_id] += change
        self._size += change

    def _on_response_created(self, event: dict[str, Any]) -> None:
        response = event["response"]
        response_id = response["id"]
        if "conversation_id" in response and response["conversation_id"] is None:
            if response_id not in self._out_of_band:
                self._out_of_band[response_id] = None
                self._size += _id_size(response_id)
        else:
            self.active_response_id = response_id
            # only the active response's items matter (connection_lost); forget the others
            for other in [r for r in self._response_items if r != response_id]:
                self._forget_response(other)

    def _on_response_done(self, event: dict[str, Any]) -> None:
        response_id = event["response"]["id"]
        if response_id in self._out_of_band:
            del self._out_of_band[response_id]
            self._size -= _id_size(response_id)
            return
        self._forget_response(response_id)
        if self.active_response_id == response_id:
            self.active_response_id = None

    # -- connections -----------------------------------------------------------------------

    def connection_lost(self) -> str | None:
        """Forget what belonged to the lost connection only; returns the response id that
        was active (its items are dropped: the response will be re-issued), if any."""
        active = self.active_response_id
        if active is not None:
            for item_id in self._response_items.get(active, ()):
                if item_id in self._items:
                    self._remove(item_id)
                    self.discarded += 1
        self.active_response_id = None
        for response_id in list(self._response_items):
            self._forget_response(response_id)
        for response_id in self._out_of_band:
            self._size -= _id_size(response_id)
        self._out_of_band.clear()
        return active

    # -- memory bound ----------------------------------------------------------------------

    def trim(self, limit: int) -> int:
        """Evict the oldest data until :attr:`size` <= ``limit`` (or nothing is left);
        returns the bytes freed.  Order: texts of unknown items, items in conversation
        order, then response bookkeeping (out-of-band ids, the active response's ids)."""
        start = self._size
        if start <= limit:
            return 0
        evicted = 0
        for item_id in [i for i in self._texts if i not in self._items]:
            if self._size <= limit:
                break
            self._drop_texts(item_id)
        while self._size > limit and self._order:
            self._remove(self._order[0])
            evicted += 1
        while self._size > limit and self._out_of_band:
            response_id = next(iter(self._out_of_band))
            del self._out_of_band[response_id]
            self._size -= _id_size(response_id)
        while self._size > limit and self._response_items:
            self._forget_response(next(iter(self._response_items)))
        freed = start - self._size
        self.evicted_items += evicted
        self.evicted_bytes += freed
        items, total = self._unreported
        self._unreported = (items + evicted, total + freed)
        return freed

    def _forget_response(self, response_id: str) -> None:
        ids = self._response_items.pop(response_id, None)
        if ids is not None:
            self._size -= _id_size(response_id) + sum(map(_id_size, ids))

    def _store(self, item_id: str, item: dict[str, Any]) -> None:
        """Put ``item`` in ``_items`` and account for its size (replacing any old size)."""
        self._items[item_id] = item
        size = json_size(item) + _id_size(item_id)  # the item, and its id in _order
        self._size += size - self._item_bytes.get(item_id, 0)
        self._item_bytes[item_id] = size

    def _drop_texts(self, item_id: str) -> None:
        if self._texts.pop(item_id, None) is not None:
            self._size -= self._text_bytes.pop(item_id)

    def replay_events(self) -> list[dict[str, Any]]:
        """``conversation.item.create`` events that rebuild the conversation in order.

        Events are chained by ``previous_item_id`` (the first is ``"root"``) and items keep
        their ids.  Audio is replayed as text: user ``input_audio`` as ``input_text`` of its
        transcript, assistant ``output_audio`` as ``output_text``.  Function calls and their
        outputs are replayed as they are (minus the server-only ``object``/``status``).
        Items with nothing usable (audio without transcript, assistant output still in
        progress, unknown item types) are skipped; :attr:`last_skipped` counts them.
        """
        events = []
        previous = "root"
        skipped = 0
        for item_id in self._order:
            item = self._replay_item(self._items[item_id])
            if item is None:
                skipped += 1
                continue
            events.append(
                {"type": "conversation.item.create", "previous_item_id": previous, "item": item}
            )
            previous = item_id
        self.last_skipped = skipped
        return events

    # -- internals -------------------------------------------------------------------------

    def _upsert(self, item: dict[str, Any], previous: Any) -> None:
        item_id = item["id"]
        if item_id in self._items:
            self._store(item_id, item)
            return
        self._store(item_id, item)
        if previous == "root":
            self._order.insert(0, item_id)
        elif previous is not None and previous in self._items and previous != item_id:
            self._order.insert(self._order.index(previous) + 1, item_id)
        else:
            self._order.append(item_id)

    def _remove(self, item_id: str) -> None:
        if self._items.pop(item_id, None) is not None:
            self._order.remove(item_id)
            self._size -= self._item_bytes.pop(item_id)
        self._drop_texts(item_id)

    def _replay_item(self, item: dict[str, Any]) -> dict[str, Any] | None:
        kind = item.get("type")
        if kind in ("function_call", "function_call_output"):
            if kind == "function_call" and item.get("status") == "in_progress":
                return None
            return {k: v for k, v in item.items() if k not in _SERVER_ONLY}
        if kind != "message":
            return None
        role = item.get("role")
        if role == "assistant" and item.get("status") == "in_progress":
            return None
        content = item.get("content")
        if role not in ("user", "assistant", "system") or not isinstance(content, list):
            return None
        texts = self._texts.get(item["id"], {})
        text_type = "output_text" if role == "assistant" else "input_text"
        parts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            part_type = part.get("type")
            if part_type in _AUDIO_PARTS:
                text = texts.get(index) or part.get("transcript")
            elif part_type in _TEXT_PARTS:
                text = part.get("text") or texts.get(index)
            elif part_type == "input_image" and role == "user":
                parts.append({k: v for k, v in part.items() if k in _IMAGE_KEYS})
                continue
            else:
                continue
            if isinstance(text, str) and text:
                parts.append({"type": text_type, "text": text})
        if not parts:
            return None
        return {"id": item["id"], "type": "message", "role": role, "content": parts}


_HANDLERS: dict[str, Callable[[SessionMirror, dict[str, Any]], None]] = {
    "conversation.item.added": SessionMirror._on_item,
    "conversation.item.done": SessionMirror._on_item,
    "conversation.item.created": SessionMirror._on_item,
    "conversation.item.deleted": SessionMirror._on_deleted,
    "conversation.item.truncated": SessionMirror._on_truncated,
    "conversation.item.input_audio_transcription.completed": (
        lambda self, event: self._set_text(event, "transcript")
    ),
    "response.output_text.done": lambda self, event: self._set_text(event, "text"),
    "response.output_audio_transcript.done": (
        lambda self, event: self._set_text(event, "transcript")
    ),
    "response.output_item.added": SessionMirror._on_output_item_added,
    "response.output_item.done": SessionMirror._on_output_item_done,
    "response.created": SessionMirror._on_response_created,
    "response.done": SessionMirror._on_response_done,
}

#: the server event types the mirror acts on (any other leaves it as it is)
HANDLED_TYPES: frozenset[str] = frozenset(_HANDLERS)
