"""Audio turns in flight across a reconnect (sans-I/O): what is re-sent so no voice turn is lost.

The server's input audio buffer, and a committed turn it has not answered yet, die with the
connection. The conversation mirror cannot restore them (user audio without a transcript has no
text to replay), so :class:`TurnTracker` keeps the *client events* of every audio turn that is
still in flight, and :class:`~actors.proto.client.ClientCore` re-sends them after the restore
sequence of the next connection. The rule, per turn:

=============================================  ============================================
state at the drop                              after the reconnect
=============================================  ============================================
audio appended, not committed (the open        its appends are re-sent: the server's VAD
utterance)                                     (or the client's later commit) sees it again
committed (``input_audio_buffer.committed``),  its appends are re-sent, and with them the
response not done                              client's ``commit`` / ``response.create`` that
                                               followed them (manual turns); the user item is
                                               dropped from the mirror and the unfinished
                                               response is not re-issued: the turn runs again
                                               from its audio and is answered once
answered (``response.done`` seen)              nothing: it is history, restored by the mirror
=============================================  ============================================

With server VAD (``vad=True``, the default turn detection) audio before the server's
``input_audio_buffer.speech_started`` is not a turn yet: only its last ``pre_speech_bytes``
(2 s, more than the VAD's prefix padding) is kept. That tail is re-sent too, though no speech
started in it as far as the client knows: the server's ``speech_started`` comes only after
enough speech (and after its prefix padding), and a drop can take it with the connection, so
"no speech started" at the client does not mean the server heard none. Without the tail, an
utterance whose start fell in the last moments before a drop reached the new connection
without its beginning, the VAD never heard a turn, and the client waited for an answer that
could not come (the one failure of a 2-hour soak). Re-sending up to 2 s of what may be silence
costs nothing the server does not already handle. Without VAD every append since the last
commit is the turn.

Each re-sent turn counts once in ``replayed_turns``; a re-sent pre-speech tail does not (it is
not known to be a turn) but its appends count in ``resent_pre_speech``. A turn whose audio went over ``max_bytes``
(base64 characters kept per connection; default 8 MiB, about two minutes of 24 kHz PCM16) cannot
be replayed: its audio is released as soon as it overflows and, if a drop catches it, the next
connection reports it as :class:`TurnLost` at once, never by a timeout.

Turn boundaries come from the server's events: ``input_audio_buffer.committed`` closes the open
utterance into a committed turn, ``response.done`` answers the oldest committed turn (responses
are answered in order; in a transcription session, ``transcribe=True``, the turn's transcript
answers it instead: ``conversation.item.input_audio_transcription.completed`` or ``.failed``
naming its item), ``input_audio_buffer.cleared`` and a written ``input_audio_buffer.clear``
discard the open utterance. Caveat: a client ``response.create`` for a text turn that is
answered while an audio turn is committed and unanswered is taken as that turn's answer (FIFO).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

from actors.proto.errors import ProtocolError

__all__ = ["DEFAULT_MAX_TURN_BYTES", "TurnLost", "TurnTracker", "Turn"]

#: Default bound of the audio kept for replay, in base64 characters (about 131 s of 24 kHz PCM16).
DEFAULT_MAX_TURN_BYTES = 8 * 2**20
#: Audio kept before speech starts (server VAD), base64 characters: 2 s of 24 kHz PCM16.
DEFAULT_PRE_SPEECH_BYTES = 128_000

_APPEND = "input_audio_buffer.append"
_COMMIT = "input_audio_buffer.commit"
_CLEAR = "input_audio_buffer.clear"
_RESPONSE_CREATE = "response.create"
#: a transcription session's answer to a committed turn (``transcribe=True``)
_TRANSCRIBED = frozenset({"conversation.item.input_audio_transcription.completed",
                          "conversation.item.input_audio_transcription.failed"})


class TurnLost(ProtocolError):
    """An audio turn in flight at a drop could not be replayed (returned, never raised)."""

    def __init__(self, reason: str, turns: int) -> None:
        super().__init__("turn_lost", f"{turns} audio turn(s) in flight at the drop were lost: "
                         f"{reason}", detail={"turns": turns, "reason": reason}, local=True)


@attrs.define
class Turn:
    """The client events of one audio turn, in write order."""

    events: deque[dict[str, Any]] = attrs.field(factory=deque)
    size: int = 0  # base64 characters of its appends
    overflowed: bool = False
    speaking: bool = False  # the server's VAD heard speech start in it
    item_id: str | None = None  # the user item, once committed

    @property
    def has_audio(self) -> bool:
        return self.overflowed or any(e["type"] == _APPEND for e in self.events)


@attrs.define
class TurnTracker:
    """Tracks the audio turns in flight on the current connection; see the module docstring."""

    max_bytes: int = DEFAULT_MAX_TURN_BYTES
    #: server VAD decides the turns (False: the client commits them)
    vad: bool = True
    pre_speech_bytes: int = DEFAULT_PRE_SPEECH_BYTES
    #: the open utterance keeps its newest ``max_bytes`` instead of overflowing (GPT-Live,
    #: whose server marks speech only once it has ended: all audio since the last answer
    #: began is the utterance, and its oldest part is silence the new session need not hear)
    window: bool = False
    #: a transcription session: a committed turn is answered by its item's transcript
    transcribe: bool = False
    open: Turn = attrs.field(factory=Turn)
    committed: deque[Turn] = attrs.field(factory=deque)
    replayed: int = 0
    lost: int = 0
    #: appends of pre-speech tails re-sent (see the module docstring)
    resent_pre_speech: int = 0
    _size: int = 0  # audio kept in all turns
    _replayed_turn: bool = False  # the last take_replay re-sent a turn (not only a tail)

    # -- what was written --------------------------------------------------------------------

    def append_written(self, event: dict[str, Any]) -> None:
        """The hot path: one ``input_audio_buffer.append`` written."""
        turn = self.open
        if turn.overflowed:
            return
        size = len(event["audio"])
        if self._size + size > self.max_bytes:
            if not self.window:
                self._release(turn)
                return
            events = turn.events
            while events and self._size + size > self.max_bytes and events[0]["type"] == _APPEND:
                dropped = len(events.popleft()["audio"])
                turn.size -= dropped
                self._size -= dropped
            if self._size + size > self.max_bytes:  # committed turns hold the rest
                self._release(turn)
                return
        turn.events.append(event)
        turn.size += size
        self._size += size
        if self.vad and not turn.speaking:
            events = turn.events
            while turn.size > self.pre_speech_bytes and events[0]["type"] == _APPEND:
                dropped = len(events.popleft()["audio"])
                turn.size -= dropped
                self._size -= dropped

    def control_written(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == _CLEAR:
            self._discard_open()
        elif kind == _COMMIT or (kind == _RESPONSE_CREATE and self._open_committed()):
            if self.open.has_audio:
                self.open.events.append(event)

    def _open_committed(self) -> bool:
        return any(e["type"] == _COMMIT for e in self.open.events)

    # -- what the server said ----------------------------------------------------------------

    def server_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "input_audio_buffer.committed":
            turn, self.open = self.open, Turn()
            turn.item_id = event.get("item_id")
            if turn.has_audio:
                self.committed.append(turn)
        elif kind == "response.done":
            if self.committed and not self.transcribe:
                self._forget(self.committed.popleft())
        elif kind in _TRANSCRIBED:
            if self.transcribe:
                item_id = event.get("item_id")
                for turn in self.committed:
                    if turn.item_id == item_id:
                        self.committed.remove(turn)
                        self._forget(turn)
                        break
        elif kind == "input_audio_buffer.speech_started":
            self.open.speaking = True
        elif kind == "input_audio_buffer.cleared":
            self._discard_open()

    # -- across a reconnect ------------------------------------------------------------------

    @property
    def in_flight(self) -> bool:
        return bool(self.committed) or self._open_counts()

    def _open_counts(self) -> bool:
        """The open utterance is a turn to replay: speech started in it, or no VAD."""
        return self.open.has_audio and (self.open.speaking or not self.vad)

    def committed_items(self) -> list[str]:
        """User items of committed, unanswered turns (dropped from the mirror before replay)."""
        return [t.item_id for t in self.committed if t.item_id]

    def take_replay(self) -> tuple[list[dict[str, Any]], TurnLost | None]:
        """The events to re-send on the new connection (oldest turn first) and, if some turn
        could not be replayed, the notice saying so. Resets the tracker: the re-sent events are
        tracked again as they are written."""
        tail = self.open if self.open.has_audio and not self._open_counts() else None
        turns = [*self.committed, *([self.open] if self._open_counts() else [])]
        self.committed = deque()
        self.open = Turn()
        self._size = 0
        events: list[dict[str, Any]] = []
        lost = 0
        for turn in turns:
            if turn.overflowed:
                lost += 1
            elif turn.has_audio:
                events.extend(turn.events)
                self.replayed += 1
        self._replayed_turn = bool(events)
        if tail is not None and not tail.overflowed:  # the pre-speech tail, after the turns
            appends = [e for e in tail.events if e["type"] == _APPEND]
            events.extend(appends)
            self.resent_pre_speech += len(appends)
        notice = None
        if lost:
            self.lost += lost
            notice = TurnLost(f"over the {self.max_bytes}-byte replay bound", lost)
        return events, notice

    def track_replayed(self, events: list[dict[str, Any]]) -> None:
        """The re-sent events were written: track them again (speech had started in them,
        unless they are only a pre-speech tail, which stays one: trimmed until speech starts)."""
        self.open.speaking = bool(events) and self._replayed_turn
        for event in events:
            if event["type"] == _APPEND:
                self.append_written(event)
            else:
                self.control_written(event)

    def reset(self) -> None:
        """Forget the turns in flight (a connection whose server kept its input buffer)."""
        self.committed = deque()
        self.open = Turn()
        self._size = 0

    # -- helpers -----------------------------------------------------------------------------

    def _release(self, turn: Turn) -> None:
        """The turn is too long to replay: free its audio, remember that it overflowed."""
        self._size -= turn.size
        turn.events = deque(e for e in turn.events if e["type"] != _APPEND)
        turn.size = 0
        turn.overflowed = True

    def _forget(self, turn: Turn) -> None:
        self._size -= turn.size

    def _discard_open(self) -> None:
        self._forget(self.open)
        self.open = Turn()
