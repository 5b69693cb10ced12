"""The Live edge: one session's translator between rtfleet's one contract and the Live wire.

rtfleet has one actor contract and one vocabulary for what a session does: the Realtime GA
events (``conversation.item.create``, ``response.create``, ``input_audio_buffer.append`` out;
``response.created`` … ``response.done``, ``conversation.item.added``, transcripts in). The
client core (:class:`~actors.proto.client.ClientCore`), its mirror, its audio-turn tracker, the
scenario driver, ``fleet.ask`` and the metrics all speak it. GPT-Live has no user text message,
no commit, no response object and no "turn done" event (its transcripts "do not define complete
turns"), so this edge keeps the little state it takes to speak Live on the wire while everything
above it keeps its vocabulary, as the beta edge does for old Realtime servers.

Out (client -> wire), decided at submit time (:meth:`LiveEdge.absorbs`) and write time
(:meth:`LiveEdge.to_wire`):

===========================================  ==============================================
canonical event                              on the Live wire
===========================================  ==============================================
``input_audio_buffer.append``                ``session.input_audio.append`` (same audio)
``conversation.item.create`` user text       ``session.commentary.append`` (Live has no user
                                             text message: speakable context the model answers)
``conversation.item.create`` system text     ``session.instructions.append``
``response.create``                          nothing: Live answers by itself; kept pending
                                             until the answer starts, as on Realtime
``session.update``                           nothing: model, voice, instructions and format
                                             are fixed at ``session.start``; the new config is
                                             used by the next session (a reconnect)
commit, clear, cancel, truncate, delete,     nothing (no Live equivalent; barge-in on Live is
retrieve, ``output_audio_buffer.clear``      speaking over the model)
Live events (``session.*``, ``decision.*``,  as they are
``response.item.create`` …)
===========================================  ==============================================

In (wire -> events published), by :meth:`LiveEdge.from_wire`:

* ``session.output_audio.delta`` / ``session.output_transcript.delta`` open an *answer*
  (``response.created`` and ``response.output_item.added`` of an assistant message) and become
  ``response.output_audio.delta`` / ``response.output_audio_transcript.delta``.
* The answer ends when the output goes quiet for :data:`DEFAULT_ANSWER_GAP` seconds (the I/O
  shell measures it and calls :meth:`close_answer`; a listener knows no better; a stall of
  the client counts as one tick of it, not as quiet: ``actors.inbound.end_quiet_answers``),
  when the user speaks over it (status ``cancelled``) or when the session closes
  (``incomplete``): then
  ``response.output_audio_transcript.done``, ``response.output_item.done`` and ``response.done``
  with the whole transcript.
* ``session.input_transcript.delta`` opens a user audio turn (``input_audio_buffer.speech_started``
  and the user item) and becomes ``conversation.item.input_audio_transcription.delta``; the
  turn is committed (``input_audio_buffer.committed``, ``…transcription.completed``) when the
  answer starts.
* ``session.commentary.appended`` / ``session.instructions.appended`` acknowledging an item
  create (by ``client_event_id``) are followed by ``conversation.item.added`` with the item.
* Everything else (``session.started``, ``session.closed``, usage, delegation, decisions,
  ``info``, ``error``) passes through under its Live name.

Ids of synthesized objects are ``resp_live_<n>`` / ``item_live_<n>``; synthesized events have
no ``event_id``.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["DEFAULT_ANSWER_GAP", "LiveEdge", "DEFAULT_LIVE_MODEL"]

#: seconds of output silence after which an answer is taken as finished
DEFAULT_ANSWER_GAP = 0.6
#: the Live model used when a session's configuration names none (or a Realtime model)
DEFAULT_LIVE_MODEL = "gpt-live-1"

Event = dict[str, Any]

#: canonical client events with no Live equivalent: accepted and not sent
_ABSORBED = frozenset({
    "session.update", "input_audio_buffer.commit", "input_audio_buffer.clear", "response.cancel",
    "output_audio_buffer.clear", "conversation.item.truncate", "conversation.item.delete",
    "conversation.item.retrieve",
})
_APPEND = "input_audio_buffer.append"


@attrs.define
class _Answer:
    response_id: str
    item_id: str
    transcript: list[str] = attrs.field(factory=list)
    metadata: Any = None


@attrs.define
class _UserTurn:
    item_id: str
    transcript: list[str] = attrs.field(factory=list)


@attrs.define
class LiveEdge:
    """Per-session translation state (see the module docstring)."""

    #: seconds of output silence that end an answer (the shell's timer)
    answer_gap: float = DEFAULT_ANSWER_GAP
    #: output events seen (the shell compares it across a gap to see whether output went on)
    outputs: int = 0
    answer: _Answer | None = None
    user: _UserTurn | None = None
    #: the restore's working set (``restore.py``): user text to re-send live, and what the
    #: greeting seeded / could not restore
    resend: list[Event] = attrs.field(factory=list)
    seeded: int = 0
    not_restored: int = 0
    #: item creates written and not yet acknowledged: client event id -> canonical item
    _appends: dict[str, Event] = attrs.field(factory=dict)
    _n: int = 0

    # -- out ---------------------------------------------------------------------------------

    @staticmethod
    def absorbs(event: Event) -> bool:
        """A canonical client event that has no Live equivalent (accepted, never written)."""
        return event["type"] in _ABSORBED

    def to_wire(self, event: Event) -> Event | None:
        """The Live event to write for one (written) event, or None when nothing is sent."""
        kind = event["type"]
        if kind == _APPEND:
            return {"type": "session.input_audio.append", "audio": event["audio"],
                    "event_id": event["event_id"]}
        if kind == "conversation.item.create":
            item = event["item"]
            kind = ("session.instructions.append" if item.get("role") in ("system", "developer")
                    else "session.commentary.append")
            self._appends[event["event_id"]] = item
            return {"type": kind, "content": item_text(item), "delegation_id": None,
                    "event_id": event["event_id"]}
        if kind == "response.create" or kind in _ABSORBED:
            return None
        return event

    # -- in ----------------------------------------------------------------------------------

    @property
    def answer_open(self) -> bool:
        return self.answer is not None

    def from_wire(self, event: Event) -> list[Event]:
        """The events one Live server event stands for, in order (see the module docstring)."""
        kind = event["type"]
        if kind == "session.output_audio.delta":
            out = self._open_answer()
            self.outputs += 1
            out.append(self._answer_event("response.output_audio.delta", delta=event["delta"]))
            return out
        if kind == "session.output_transcript.delta":
            out = self._open_answer()
            self.outputs += 1
            assert self.answer is not None
            self.answer.transcript.append(event["delta"])
            out.append(self._answer_event("response.output_audio_transcript.delta",
                                          delta=event["delta"]))
            return out
        if kind == "session.input_transcript.delta":
            out = self.close_answer("cancelled") if self.answer is not None else []
            if self.user is None:
                self.user = _UserTurn(self._id("item_live"))
                out.append({"type": "input_audio_buffer.speech_started",
                            "item_id": self.user.item_id, "audio_start_ms": event["start_ms"]})
                out.append({"type": "conversation.item.added", "previous_item_id": None,
                            "item": self._user_item(None)})
            self.user.transcript.append(event["delta"])
            out.append({"type": "conversation.item.input_audio_transcription.delta",
                        "item_id": self.user.item_id, "content_index": 0, "delta": event["delta"]})
            return out
        if kind in ("session.commentary.appended", "session.instructions.appended"):
            item = self._appends.pop(event.get("client_event_id") or "", None)
            if item is None:
                return [event]
            return [event, {"type": "conversation.item.added", "previous_item_id": None,
                            "item": item}]
        if kind == "session.closed":
            out = self.close_answer("incomplete") if self.answer is not None else []
            out.append(event)
            return out
        if kind == "error":
            failed = (event.get("error") or {}).get("client_event_id") or event.get("client_event_id")
            if failed:
                self._appends.pop(failed, None)
        return [event]

    def answered(self, created: Event, request: Event) -> None:
        """The open answer answers ``request`` (a pending ``response.create``): it carries the
        request's ``metadata`` (``fleet.ask`` tells its answer apart by it)."""
        metadata = (request.get("response") or {}).get("metadata")
        if metadata is not None and self.answer is not None:
            self.answer.metadata = metadata
            created["response"]["metadata"] = metadata

    def close_answer(self, status: str = "completed") -> list[Event]:
        """End the open answer (output went quiet, the user spoke, or the session closed)."""
        answer, self.answer = self.answer, None
        if answer is None:
            return []
        transcript = "".join(answer.transcript)
        item = {"id": answer.item_id, "type": "message", "role": "assistant",
                "status": "completed" if status == "completed" else "incomplete",
                "content": [{"type": "output_audio", "transcript": transcript}]}
        ids = {"response_id": answer.response_id, "item_id": answer.item_id, "output_index": 0}
        return [
            {"type": "response.output_audio_transcript.done", **ids, "content_index": 0,
             "transcript": transcript},
            {"type": "response.output_item.done", "response_id": answer.response_id,
             "output_index": 0, "item": item},
            {"type": "response.done", "response": {
                "id": answer.response_id, "object": "realtime.response", "status": status,
                "output": [item], **({"metadata": answer.metadata} if answer.metadata else {})}},
        ]

    # -- connections -------------------------------------------------------------------------

    def connection_lost(self) -> None:
        """The Live session died with its connection: forget what belonged to it (the core's
        mirror drops the unfinished answer; the audio turn tracker keeps the user's audio)."""
        self.answer = None
        self.user = None
        self._appends.clear()

    # -- helpers -----------------------------------------------------------------------------

    def _open_answer(self) -> list[Event]:
        if self.answer is not None:
            return []
        out: list[Event] = []
        if self.user is not None:  # the user's turn ends where the answer begins
            user, self.user = self.user, None
            transcript = "".join(user.transcript)
            out += [
                {"type": "input_audio_buffer.speech_stopped", "item_id": user.item_id},
                {"type": "input_audio_buffer.committed", "item_id": user.item_id},
                {"type": "conversation.item.input_audio_transcription.completed",
                 "item_id": user.item_id, "content_index": 0, "transcript": transcript},
                {"type": "conversation.item.done", "previous_item_id": None,
                 "item": {**self._user_item(transcript), "id": user.item_id}},
            ]
        self.answer = _Answer(self._id("resp_live"), self._id("item_live"))
        item = {"id": self.answer.item_id, "type": "message", "role": "assistant",
                "status": "in_progress", "content": []}
        out += [
            {"type": "response.created", "response": {
                "id": self.answer.response_id, "object": "realtime.response",
                "status": "in_progress", "output": []}},
            {"type": "response.output_item.added", "response_id": self.answer.response_id,
             "output_index": 0, "item": item},
        ]
        return out

    def _answer_event(self, kind: str, **fields: Any) -> Event:
        assert self.answer is not None
        return {"type": kind, "response_id": self.answer.response_id,
                "item_id": self.answer.item_id, "output_index": 0, "content_index": 0, **fields}

    def _user_item(self, transcript: str | None) -> Event:
        assert self.user is not None or transcript is not None
        item_id = self.user.item_id if self.user is not None else ""
        return {"id": item_id, "type": "message", "role": "user",
                "content": [{"type": "input_audio", "transcript": transcript}]}

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"


def item_text(item: Event) -> str:
    """The text of a canonical message item (its text parts joined)."""
    parts = []
    for part in item.get("content") or ():
        if isinstance(part, dict):
            text = part.get("text") if part.get("text") is not None else part.get("transcript")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)
