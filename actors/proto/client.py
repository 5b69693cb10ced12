"""The client side of one realtime *session*, across all of its connections (sans-I/O).

A :class:`ClientCore` lives as long as the logical session; transport connections come and
go beneath it.  The I/O shell drives it like h11: it says when a connection starts and ends,
feeds every received frame to :meth:`~ClientCore.receive`, and writes whatever
:meth:`~ClientCore.outgoing` returns.  The core never blocks, sleeps or reads a clock.

Connection life: :meth:`connection_started` → frames in via :meth:`receive` → the server's
``session.created`` makes the core *ready* → the first :meth:`outgoing` of the connection
returns the restore sequence followed by everything queued → :meth:`connection_lost`.

Restore sequence (first :meth:`outgoing` after ``session.created`` on each connection): the
dialect's ``restore`` (:mod:`actors.proto.dialect`; Realtime's is
:mod:`actors.proto.realtime.restore`: the config, the conversation replayed, unacknowledged
creates, the unfinished response re-issued, audio turns in flight).

Delivery guarantees and policy:

* **Audio** (``input_audio_buffer.append``) is *at most once, freshest kept*.  While no
  connection is ready it waits in a bounded queue (``audio_limit`` events; 250 × 20 ms ≈ 5 s);
  when the queue is full the *oldest* audio is dropped and :meth:`submit` returns a drop
  notice ``{"count", "category": "audio", "reason"}`` for the shell to publish as a
  ``dropped`` event.  Nothing is dropped silently (``counters.dropped_audio`` has the total).
  Audio already written to a connection that is then lost is re-sent only as part of an audio
  turn in flight (see "Audio turns" below).
* **Control events** (everything else) are *never dropped*.  Their queue is bounded too
  (``control_limit``); when it is full :meth:`submit` raises :class:`QueueFull` and enqueues
  nothing: the shell waits (for a connection to drain the queue) and submits again.
* **Order** is submit order across both kinds: one sequence number orders audio and control,
  so a commit is always written after the appends submitted before it (minus any dropped).
* **Acknowledged events**: ``conversation.item.create`` is acknowledged by
  ``conversation.item.added``/``.done`` carrying its item id (the core gives items without an
  id one, ``item_c_<n>``), ``response.create`` by ``response.created`` (first in, first out),
  ``session.update`` by ``session.updated``; an ``error`` whose ``error.event_id`` names a
  pending event acknowledges it as *failed* (not retried).  Until acknowledged, item and
  response creates are kept and re-sent on the next connection.  Pending ``session.update``
  events are not re-sent: every submitted ``session.update`` also updates the core's config,
  which step 1 sends on every connection.
* **Exactly once across reconnects**: however many connections are lost, at whatever point,
  each submitted ``conversation.item.create`` the server does not reject appears exactly once
  in the final connection's conversation (replayed from the mirror if the server had
  acknowledged it, re-sent if not), in submit order (for items appended without
  ``previous_item_id``); each ``response.create`` is answered once: re-sent if unanswered,
  re-issued if answered but unfinished.  A response is atomic: the items of an unfinished
  response are dropped from the mirror, so only the re-issued answer is kept.
* **Audio turns** in flight at a drop (appended but not committed, or committed and not yet
  answered) are re-sent after the restore sequence, so each is heard and answered once: the
  rule is :mod:`actors.proto.turns` (:class:`~actors.proto.turns.TurnTracker`). Their user
  items are dropped from the mirror and their unfinished response is not re-issued; a turn too
  long to keep is reported by the next :meth:`receive` as a
  :class:`~actors.proto.turns.TurnLost` value (``turn_lost``), at once.
* **Fire and forget**: append, commit, clear, ``output_audio_buffer.clear``, cancel,
  truncate, delete and retrieve are done once written.  A ``conversation.item.delete`` the
  server never confirmed is applied to the mirror when the connection is lost, so the item is
  not replayed.

Caveats: with server VAD creating responses itself, a server-started ``response.created`` can
acknowledge a pending client ``response.create`` (FIFO cannot tell them apart).  User audio
whose transcript never arrived cannot be replayed (enable input transcription to keep voice
turns across reconnects); skipped items are counted, and a re-sent item whose
``previous_item_id`` names a skipped item is rejected by the server.  The restore assumes a
new connection is a new, empty session: not so for a ``?call_id=`` sideband socket that
re-attaches to a live call, where a replay would duplicate the conversation: make its core
with ``replay=False``, which restores without steps 2 and 4 (the config is still sent, and
unacknowledged creates are still re-sent, since the server may never have seen them).

Memory bound: what the core keeps to restore a session grows with the conversation: the
mirror's items and transcripts, written creates awaiting their acknowledgement, pending
deletes.  Together they are bounded by ``max_restore_bytes`` (default
:data:`DEFAULT_MAX_RESTORE_BYTES`, 4 MiB, measured as JSON text; see
:mod:`actors.proto.mirror`).  When an event or a write takes them over the bound, the oldest
restorable data is evicted until they fit: the oldest conversation items first (they are no
longer replayed), then pending deletes (applied to the mirror at once), then the oldest
unacknowledged creates (no longer re-sent, nor waited for).  The next :meth:`receive`
returns, after the frame's own result, one :class:`SessionMemoryLimit` value (code
``session_memory_limit``, ``local=True``) whose detail says what was evicted; shells publish
it like any other :class:`ProtocolError` value, as a ``protocol_error`` event.  The counters
(``evicted_items``, ``evicted_bytes``, ``evicted_pending``) keep the totals.  The other
client-side buffers are bounded by count: the audio and control queues (``audio_limit``,
``control_limit``) and the requests of unfinished responses (only the active one is kept).

Errors: :class:`ProtocolError` (``local=True``) from :meth:`submit` for an invalid event,
:class:`QueueFull` when the control queue is full, :class:`SessionConfigError` for an invalid
``session.update``.  :meth:`receive` never raises for peer input: bad frames come back as
:class:`ProtocolError` values.  See :mod:`actors.proto.errors` for the tree.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

from actors.proto.client_values import (
    DEFAULT_MAX_RESTORE_BYTES,
    EVENT_ID_PREFIX,
    ITEM_ID_PREFIX,
    ClientCounters,
    RestoreSummary,
    SessionMemoryLimit,
    event_id_error,
)
from actors.proto.dialect import Dialect, check_dialect
from actors.proto.errors import ProtocolError, QueueFull
from actors.proto.memory_bound import delete_size, enforce_limit, limit_notice
from actors.proto.mirror import HANDLED_TYPES, SessionMirror, json_size
from actors.proto.realtime.dialect import REALTIME
from actors.proto.session import SESSION_TYPES, SessionConfig, audio_bytes_per_ms
from actors.proto.turns import TurnLost, TurnTracker

__all__ = ["ClientCore"]

_APPEND = "input_audio_buffer.append"
_ITEM_CREATE = "conversation.item.create"
_RESPONSE_CREATE = "response.create"
_SESSION_UPDATE = "session.update"


_POSITIVE = [attrs.validators.instance_of(int), attrs.validators.ge(1)]


# Validated when constructed only: attrs' default hook would run on every assignment, and the
# core assigns its counters several times per audio frame.
@attrs.define(on_setattr=attrs.setters.NO_OP)
class ClientCore:
    """Sans-I/O client for one realtime session; see the module docstring."""

    config: SessionConfig | None = None
    audio_limit: int = attrs.field(default=250, kw_only=True, validator=_POSITIVE)
    control_limit: int = attrs.field(default=1024, kw_only=True, validator=_POSITIVE)
    max_frame: int = attrs.field(default=16 * 2**20, kw_only=True, validator=_POSITIVE)
    #: ``"ga"``, or ``"beta"`` to translate at the edge for old servers.
    dialect: str = attrs.field(
        default="ga", kw_only=True, validator=attrs.validators.in_(("ga", "beta"))
    )
    mirror: SessionMirror = attrs.field(factory=SessionMirror, kw_only=True)
    #: the protocol dialect (:mod:`actors.proto.dialect`): what events mean and how a session
    #: is restored; ``dialect`` above is the wire variant within it (Realtime: "ga" or "beta")
    protocol: Dialect = attrs.field(default=REALTIME, kw_only=True)
    #: replay the conversation (and re-issue an unfinished response) on a new connection;
    #: False for ``?call_id=`` sideband sockets, whose call keeps its conversation
    replay: bool = attrs.field(default=True, kw_only=True)
    #: bound of the restore data in bytes (mirror + unacknowledged creates + pending
    #: deletes); the oldest is evicted beyond it (see the module docstring)
    max_restore_bytes: int = attrs.field(
        default=DEFAULT_MAX_RESTORE_BYTES, kw_only=True, validator=_POSITIVE
    )
    #: the audio turns in flight on the current connection (re-sent after a drop)
    turns: TurnTracker = attrs.field(factory=TurnTracker, kw_only=True)

    session_id: str | None = attrs.field(default=None, init=False)
    expires_at: int | None = attrs.field(default=None, init=False)
    #: Connections that reached ``session.created``.
    connections: int = attrs.field(default=0, init=False)
    last_restore: RestoreSummary | None = attrs.field(default=None, init=False)
    #: The last event :meth:`submit` enqueued, with the ids the core gave it.
    last_submitted: dict[str, Any] | None = attrs.field(default=None, init=False)

    _connected: bool = attrs.field(default=False, init=False)
    _ready: bool = attrs.field(default=False, init=False)
    _restore_due: bool = attrs.field(default=False, init=False)
    #: ids of the items the current connection's restore replayed, until the server adds them
    _replay_waiting: set[str] = attrs.field(factory=set, init=False)
    _seq: int = attrs.field(default=0, init=False)
    _event_n: int = attrs.field(default=0, init=False)
    _item_n: int = attrs.field(default=0, init=False)
    _audio: deque[tuple[int, dict[str, Any]]] = attrs.field(factory=deque, init=False)
    _control: deque[tuple[int, dict[str, Any]]] = attrs.field(factory=deque, init=False)
    # Written control events awaiting an ack, in first-write order, and indexes into it.
    _pending: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _pending_items: dict[str, str] = attrs.field(factory=dict, init=False)
    _pending_responses: deque[str] = attrs.field(factory=deque, init=False)
    _pending_updates: deque[str] = attrs.field(factory=deque, init=False)
    _requests: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _deletes: dict[str, str] = attrs.field(factory=dict, init=False)
    # measured bytes of the pending events (by event id) and of the pending deletes
    _pending_bytes: dict[str, int] = attrs.field(factory=dict, init=False)
    _pending_size: int = attrs.field(default=0, init=False)
    _deletes_size: int = attrs.field(default=0, init=False)
    # evictions not yet reported: (pending events, bytes); the mirror keeps its own
    _unreported: tuple[int, int] = attrs.field(default=(0, 0), init=False)
    _evicted_pending: int = attrs.field(default=0, init=False)
    _evicted_bytes: int = attrs.field(default=0, init=False)
    _cancel_requested: bool = attrs.field(default=False, init=False)
    _turn_notice: TurnLost | None = attrs.field(default=None, init=False)
    #: the dialect's per-session translator (GPT-Live: :class:`~actors.proto.live.edge.LiveEdge`;
    #: None for Realtime, whose wire is the one contract's vocabulary)
    edge: Any = attrs.field(default=None, init=False)
    _greet_due: bool = attrs.field(default=False, init=False)
    _started_out_of_band: bool = attrs.field(default=False, init=False)
    #: server event type -> the core's handler, from the dialect's ack table
    _acks: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False)
    #: the server event types something acts on (the mirror, the audio turns, the acks): any
    #: other is returned as it is by :meth:`receive` when nothing else is owed
    _active: frozenset[str] = attrs.field(factory=frozenset, init=False, repr=False)
    _reissue: dict[str, Any] | None = attrs.field(default=None, init=False)
    # Counters.
    _submitted: int = attrs.field(default=0, init=False)
    _written: int = attrs.field(default=0, init=False)
    _resent: int = attrs.field(default=0, init=False)
    _replayed: int = attrs.field(default=0, init=False)
    _skipped: int = attrs.field(default=0, init=False)
    _reissued: int = attrs.field(default=0, init=False)
    _dropped_audio: int = attrs.field(default=0, init=False)
    _acked: int = attrs.field(default=0, init=False)
    _failed: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        check_dialect(self.protocol)
        self._acks = {kind: _HANDLERS[ack] for kind, ack in self.protocol.acks.items()}
        self._active = HANDLED_TYPES | _TURN_EVENTS | frozenset(self._acks)
        self.mirror.max_bytes = self.max_restore_bytes
        if self.config is not None:
            self._set_config(self.config)
        new_edge = getattr(self.protocol, "new_edge", None)
        if new_edge is not None:
            self.edge = new_edge()
            # Live marks an utterance only once it has ended: every append since the last
            # answer began is the open turn (its newest 8 MiB), replayed after a drop
            self.turns.vad = False
            self.turns.window = True

    # -- state -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """A connection is up and its ``session.created`` has arrived."""
        return self._ready

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def answer_open(self) -> bool:
        """An answer is being received whose end no event marks (Live): the shell ends it
        with :meth:`output_quiet` once the output has been quiet for ``edge.answer_gap``."""
        return self.edge is not None and self.edge.answer_open

    @property
    def settled(self) -> bool:
        """Ready, the restore sequence (if due) written, and nothing written awaiting its
        acknowledgement: the server's conversation holds everything sent so far.

        A session is *connected* as soon as ``session.created`` arrives; its restore is written
        right after, so "connected" alone does not mean the conversation is back in place."""
        return (self._ready and not self._restore_due and not self._pending and not self._control
                and not self._replay_waiting)

    @property
    def queued_audio(self) -> int:
        return len(self._audio)

    @property
    def queued_control(self) -> int:
        return len(self._control)

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Written control events still awaiting acknowledgement, oldest first."""
        return list(self._pending.values())

    @property
    def counters(self) -> ClientCounters:
        return ClientCounters(
            self._submitted, self._written, self._resent, self._replayed, self._skipped,
            self.mirror.discarded, self._reissued, self._dropped_audio, self._acked, self._failed,
            self.mirror.evicted_items, self.mirror.evicted_bytes + self._evicted_bytes,
            self._evicted_pending, self.turns.replayed, self.turns.lost,
        )

    @property
    def restore_size(self) -> int:
        """The restore data in bytes, as measured for ``max_restore_bytes``."""
        return self.mirror.size + self._pending_size + self._deletes_size

    # -- submitting --------------------------------------------------------------------------

    def submit(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Validate and enqueue one GA client event; returns drop notices (usually none).

        The caller's dict is not mutated: an ``event_id`` (and an item id for
        ``conversation.item.create``) is added to a shallow copy.
        """
        if type(event) is dict and event.get("type") == _APPEND and "event_id" not in event:
            audio = event.get("audio")
            # a str (or a subclass: Base64Text, the audio rtfleet encodes itself)
            if isinstance(audio, str) and len(audio) <= self.protocol.max_append_audio:
                return self._submit_audio(event)  # the hot path: nothing else to check
        self.protocol.validate_client_event(event)
        event_id = event.get("event_id")
        if event_id is not None and event_id.startswith(EVENT_ID_PREFIX):
            raise event_id_error(event, f"ids starting with {EVENT_ID_PREFIX!r} are reserved")
        if event["type"] == _APPEND:
            return self._submit_audio(event)
        if len(self._control) >= self.control_limit:
            raise QueueFull("control", self.control_limit)
        if event_id is not None and self._id_in_use(event_id):
            raise event_id_error(event, f"{event_id!r} is already waiting to be sent or acked")
        if self.edge is not None and self.edge.absorbs(event):
            if event["type"] == _SESSION_UPDATE and event["session"].get("type") == "realtime":
                self._set_config(self.config.updated(event["session"]) if self.config is not None
                                 else SessionConfig.from_dict(event["session"]))
            self._submitted += 1  # accepted; nothing to write (see the edge's table)
            return []
        if event["type"] == _SESSION_UPDATE and event["session"]["type"] in SESSION_TYPES:
            self._set_config(
                self.config.updated(event["session"])
                if self.config is not None
                else SessionConfig.from_dict(event["session"])
            )
        elif event["type"] == _ITEM_CREATE and "id" not in event["item"]:
            self._item_n += 1
            event = {**event, "item": {**event["item"], "id": f"{ITEM_ID_PREFIX}{self._item_n}"}}
        if event_id is None:
            event = self._stamp(event)
        self._seq += 1
        self._control.append((self._seq, event))
        self.last_submitted = event
        self._submitted += 1
        return []

    def write_audio_now(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The direct path of one append: submit it and take it for writing at once, as
        :meth:`submit` then :meth:`outgoing` would, when that is all they would do (a ready
        Realtime GA connection, nothing queued, no restore due). Returns the event to write
        (stamped with its id, counted as written), or None: then use :meth:`submit`."""
        if type(event) is not dict or "event_id" in event or event.get("type") != _APPEND:
            return None
        return self.write_append_now(event.get("audio"), event)

    def write_append_now(self, audio: Any, event: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """:meth:`write_audio_now` of ``{"type": "input_audio_buffer.append", "audio": audio}``
        (or of ``event``, an append without an ``event_id``, whose audio ``audio`` is): the
        audio clock's hot path, which builds the one event it writes here."""
        if (not self._ready or self._restore_due or self._audio or self._control
                or self.edge is not None or self.dialect != "ga"):
            return None
        # a str subclass too: Base64Text, what stream_audio makes of raw audio (scenarios' play)
        if not isinstance(audio, str) or len(audio) > self.protocol.max_append_audio:
            return None
        self._event_n += 1
        event_id = f"{EVENT_ID_PREFIX}{self._event_n}"
        if event is None:
            event = {"type": _APPEND, "audio": audio, "event_id": event_id}
        else:
            event = {**event, "event_id": event_id}
        self._seq += 1
        self.last_submitted = event
        self._submitted += 1
        self.turns.append_written(event)
        self._written += 1
        return event  # an append changes no restore data: the memory bound is not touched

    def _submit_audio(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Enqueue one (valid) append: at most once, freshest kept."""
        audio = self._audio
        notices = []
        if len(audio) >= self.audio_limit:
            count = len(audio) - self.audio_limit + 1
            for _ in range(count):
                audio.popleft()
            self._dropped_audio += count
            reason = (
                "audio queue full: writer not keeping up"
                if self._ready
                else "audio queue full while not connected"
            )
            notices.append({"count": count, "category": "audio", "reason": reason})
        if "event_id" not in event:
            self._event_n += 1
            event = {**event, "event_id": f"{EVENT_ID_PREFIX}{self._event_n}"}
        self._seq += 1
        audio.append((self._seq, event))
        self.last_submitted = event
        self._submitted += 1
        return notices

    def _set_config(self, config: SessionConfig) -> None:
        self.config = config
        self.mirror.output_bytes_per_ms = audio_bytes_per_ms(config.output_format)
        self.turns.vad = config.turn_detection is not None and self.edge is None
        # a transcription session's turn is answered by its transcript, not a response
        self.turns.transcribe = config.transcribes

    def _stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        self._event_n += 1
        return {**event, "event_id": f"{EVENT_ID_PREFIX}{self._event_n}"}

    def _id_in_use(self, event_id: str) -> bool:
        return event_id in self._pending or any(
            e.get("event_id") == event_id for _, e in self._control
        )

    # -- connections -------------------------------------------------------------------------

    def connection_started(self) -> None:
        """A new transport connection begins (losing the current one first, if any).
        Nothing is sent on it until the server's ``session.created`` arrives."""
        if self._connected:
            self.connection_lost()
        self._connected = True
        self._ready = False
        self._restore_due = True
        # Live: a new session starts with session.start; a sideband (replay=False) attaches
        # to a session that runs already, and is greeted by its session.started; over WebRTC
        # the start config went with the offer (start_config)
        self._greet_due = self.edge is not None and self.replay and not self._started_out_of_band
        self._started_out_of_band = False

    def connection_lost(self) -> None:
        """The transport connection ended; keep what must be re-sent on the next one."""
        if not self._connected:
            return
        self._connected = False
        self._ready = False
        self._restore_due = False
        self._greet_due = False
        self._replay_waiting.clear()
        if self.edge is not None:
            if self.edge.user is not None:  # its audio is replayed (turns), not its item
                self.mirror.apply_server({"type": "conversation.item.deleted",
                                          "item_id": self.edge.user.item_id})
            self.edge.connection_lost()
        for event_id in self._pending_updates:
            if event_id in self._pending:
                self._unpend(event_id)
        self._pending_updates.clear()
        self._pending_responses.clear()
        for item_id in self._deletes:
            self.mirror.apply_server({"type": "conversation.item.deleted", "item_id": item_id})
        self._deletes.clear()
        self._deletes_size = 0
        replay_turn = self.replay and bool(self.turns.committed)
        if replay_turn:  # the turn runs again from its audio: its user item is not replayed
            for item_id in self.turns.committed_items():
                self.mirror.apply_server({"type": "conversation.item.deleted", "item_id": item_id})
        active = self.mirror.connection_lost()
        if active is not None and not self._cancel_requested and not replay_turn:
            request = self._requests.get(active)
            if request is None:
                request = self._stamp({"type": _RESPONSE_CREATE})
            if request["event_id"] not in self._pending:
                self._reissue = request
        self._requests.clear()
        self._cancel_requested = False

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, data: str | bytes | bytearray) -> list[dict[str, Any] | ProtocolError]:
        """One received frame in; the server event (a checked GA dict) or the
        :class:`ProtocolError` describing what was wrong with it.  Never raises for bad
        peer input."""
        try:
            event = self.protocol.parse_server_event(data, max_size=self.max_frame,
                                                     variant=self.dialect)
        except ProtocolError as exc:
            return [exc]
        if self.edge is not None:
            return self._apply_all(self.edge.from_wire(event))
        if event["type"] not in self._active and self._quiet():
            return [event]  # nothing acts on it and nothing is owed: what _apply_all returns
        return self._apply_all([event])

    def _quiet(self) -> bool:
        """Nothing for :meth:`_apply_all` to do beyond acting on its events: the restore data
        within its bound, no eviction and no lost turn to report."""
        return (self._turn_notice is None and not self._unreported[0] and not self._unreported[1]
                and not self.mirror.eviction_due
                and self.restore_size <= self.max_restore_bytes)

    def start_config(self) -> dict[str, Any]:
        """GPT-Live over WebRTC: the ``session`` of the next connection's creation request
        (``POST /v1/live/sessions``), the restore's seed included; the connection then starts
        with no ``session.start`` (call before :meth:`connection_started`). The media format is
        the transport's, so no ``audio.format``."""
        greeting = self.protocol.greeting(self)
        self._started_out_of_band = True
        session = dict(greeting[0]["session"])
        audio = {k: v for k, v in (session.pop("audio", None) or {}).items() if k != "format"}
        if audio:
            session["audio"] = audio
        return session

    def output_quiet(self) -> list[dict[str, Any] | ProtocolError]:
        """The output has been quiet for the edge's ``answer_gap``: end the open answer (Live).
        Returns the events that end it (``response.done`` last), to publish like received ones."""
        if self.edge is None or not self.edge.answer_open:
            return []
        return self._apply_all(self.edge.close_answer("completed"))

    def _apply_all(self, events: list[dict[str, Any]]) -> list[dict[str, Any] | ProtocolError]:
        """Apply received events (or those the edge made of one): the mirror, the audio turns,
        the acknowledgements; then the memory bound. Returns them, and any notice."""
        for event in events:
            self.mirror.apply_server(event)
            if event["type"] in _TURN_EVENTS:
                self.turns.server_event(event)
            handler = self._acks.get(event["type"])
            if handler is not None:
                handler(self, event)
        self._enforce_limit()
        notice = self._limit_notice()
        out: list[dict[str, Any] | ProtocolError] = list(events)
        if notice is not None:
            out.append(notice)
        if self._turn_notice is not None:
            out.append(self._turn_notice)
            self._turn_notice = None
        return out

    def _on_session_created(self, event: dict[str, Any]) -> None:
        if not self._connected:
            self.connection_started()
        if self._ready:
            return
        self.session_id, self.expires_at = self.protocol.session_info(event)
        self.connections += 1
        self._ready = True

    def _on_session_updated(self, event: dict[str, Any]) -> None:
        if self._pending_updates:
            self._ack(self._pending_updates.popleft())

    def _on_item(self, event: dict[str, Any]) -> None:
        self._replay_waiting.discard(event["item"]["id"])
        event_id = self._pending_items.get(event["item"]["id"])
        if event_id is not None:
            self._ack(event_id)

    def _on_response_created(self, event: dict[str, Any]) -> None:
        self._cancel_requested = False
        if self._pending_responses:
            event_id = self._pending_responses.popleft()
            request = self._pending[event_id]
            self._ack(event_id)
            self._requests[event["response"]["id"]] = request
            if self.edge is not None:  # Live: the answer carries its request's metadata
                self.edge.answered(event, request)
        # only the active response's request is ever re-issued: keep no other
        active = self.mirror.active_response_id
        for response_id in [r for r in self._requests if r != active]:
            del self._requests[response_id]

    def _on_response_done(self, event: dict[str, Any]) -> None:
        self._requests.pop(event["response"]["id"], None)

    def _on_deleted(self, event: dict[str, Any]) -> None:
        if self._deletes.pop(event["item_id"], None) is not None:
            self._deletes_size -= delete_size(event["item_id"])

    def _on_error(self, event: dict[str, Any]) -> None:
        event_id = self.protocol.error_event_id(event)
        if event_id is None:
            return
        if event_id in self._pending:
            for waiting in (self._pending_responses, self._pending_updates):
                if event_id in waiting:
                    waiting.remove(event_id)
            self._unpend(event_id)
            self._failed += 1
            return
        for item_id, delete_id in self._deletes.items():
            if delete_id == event_id:  # the delete failed: the item stays
                del self._deletes[item_id]
                self._deletes_size -= delete_size(item_id)
                break

    def _ack(self, event_id: str) -> None:
        self._unpend(event_id)
        self._acked += 1

    def _unpend(self, event_id: str) -> None:
        event = self._pending.pop(event_id)
        self._pending_size -= self._pending_bytes.pop(event_id)
        if event["type"] == _ITEM_CREATE:
            self._pending_items.pop(event["item"]["id"], None)

    def _add_pending(self, event_id: str, event: dict[str, Any]) -> None:
        size = json_size(event)
        self._pending_size += size - self._pending_bytes.get(event_id, 0)
        self._pending_bytes[event_id] = size
        self._pending[event_id] = event

    # -- memory bound (actors/proto/memory_bound.py) ----------------------------------------

    def _enforce_limit(self) -> None:
        enforce_limit(self)

    def _limit_notice(self) -> SessionMemoryLimit | None:
        return limit_notice(self)

    # -- writing -----------------------------------------------------------------------------

    def outgoing(self) -> list[dict[str, Any]]:
        """The events to write now, in order; they count as written.  ``[]`` until ready."""
        if not self._ready:
            if self._greet_due:  # Live: session.start goes first, before anything is ready
                self._greet_due = False
                greeting = self.protocol.greeting(self)
                self._written += len(greeting)
                return greeting
            return []
        out: list[dict[str, Any]] = []
        if self._restore_due:
            self._restore_due = False
            self._restore(out)
        audio, control = self._audio, self._control
        turns = self.turns
        if not control:
            for _, event in audio:
                turns.append_written(event)
                out.append(event)
            audio.clear()
        else:
            while audio or control:
                if control and (not audio or control[0][0] < audio[0][0]):
                    event = control.popleft()[1]
                    self._note_written(event)
                    turns.control_written(event)
                else:
                    event = audio.popleft()[1]
                    turns.append_written(event)
                out.append(event)
        self._written += len(out)
        self._enforce_limit()
        if self.edge is not None:
            to_wire = self.edge.to_wire
            return [wire for wire in map(to_wire, out) if wire is not None]
        if self.dialect != "ga":
            return [self.protocol.to_wire(event, self.dialect) for event in out]
        return out

    def _restore(self, out: list[dict[str, Any]]) -> None:
        self.protocol.restore(self, out)

    def _note_written(self, event: dict[str, Any]) -> None:
        event_type = event["type"]
        event_id = event["event_id"]
        if event_type == _ITEM_CREATE:
            self._add_pending(event_id, event)
            self._pending_items[event["item"]["id"]] = event_id
        elif event_type == _RESPONSE_CREATE:
            self._add_pending(event_id, event)
            self._pending_responses.append(event_id)
        elif event_type == _SESSION_UPDATE:
            self._add_pending(event_id, event)
            self._pending_updates.append(event_id)
        elif event_type == "response.cancel":
            self._cancel_requested = True
        elif event_type == "conversation.item.delete":
            if event["item_id"] not in self._deletes:
                self._deletes_size += delete_size(event["item_id"])
            self._deletes[event["item_id"]] = event_id


#: the server events that move audio turns (see :mod:`actors.proto.turns`)
_TURN_EVENTS = frozenset({"input_audio_buffer.committed", "input_audio_buffer.speech_started",
                          "input_audio_buffer.cleared", "response.done",
                          "conversation.item.input_audio_transcription.completed",
                          "conversation.item.input_audio_transcription.failed"})

#: the acknowledgement kinds of :data:`actors.proto.dialect.ACK_KINDS` -> the core's handlers
_HANDLERS = {
    "session_started": ClientCore._on_session_created,
    "config_acked": ClientCore._on_session_updated,
    "item_added": ClientCore._on_item,
    "item_deleted": ClientCore._on_deleted,
    "response_started": ClientCore._on_response_created,
    "response_done": ClientCore._on_response_done,
    "error": ClientCore._on_error,
}
