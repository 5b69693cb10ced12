"""The seam between the stand-in's sessions and a protocol dialect's model.

The shells in ``standin/sessions/`` (a WebSocket connection, a WebRTC call, a SIP call, a
sideband) only move frames and sleep until a deadline; everything a protocol *says* is decided
by a sans-I/O model session behind this interface. The Realtime dialect's model is
:class:`standin.model.realtime.RealtimeSession`; GPT-Live (issue 11) arrives as a sibling module
(``standin/model/live.py``) implementing the same :class:`ModelSession`, chosen by the route that
opens the session (``/v1/realtime`` vs ``/v1/live/sessions``), never by an ``if protocol ==`` in
a shell.

What each dialect provides, and what every dialect shares:

==========================  =====================================  ============================
piece                       Realtime (today)                       shared by every dialect
==========================  =====================================  ============================
model session (this seam)   ``realtime.py`` ``RealtimeSession``    --
event tables, dispatch      ``realtime.py`` (``_on_*`` handlers)   --
session config wire shape   ``config.py`` (``session.update``)     --
response event emission     ``response.py`` (``ResponseRun``)      ``split_words``, ``reply_for``
conversation items          ``conversation.py`` (item shapes)      --
audio formats, tone, VAD    --                                     ``audio.py``, ``vad.py``
ids, errors                 ``events.py`` (``error`` event shape)  ``IdFactory``, ``ClientError``
deadline wait (trio)        --                                     ``timer.py`` (``ModelTimer``,
                                                                   ``SharedTimer``)
records, faults, keys       --                                     ``standin/records.py``,
                                                                   ``standin/faults/``,
                                                                   ``standin/keys/``
==========================  =====================================  ============================
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from standin.model.events import IdFactory

__all__ = ["ModelSession"]

Event = dict[str, Any]


@runtime_checkable
class ModelSession(Protocol):
    """One protocol session's state machine: client events and a clock in, server events out.

    ``now`` is monotonic seconds; nothing here sleeps or reads a clock, and nothing blocks
    except a speaking voice's first chunk (``ModelConfig.voice``), which waits for the speech
    being synthesized when the answer's time to first audio has not covered it.
    """

    #: the session object as the dialect shows it (``session.created``), incl. ``"model"``
    session: dict[str, Any]
    ids: IdFactory
    #: "websocket" | "sideband" | "webrtc" | "sip": what carries the session
    transport: str
    #: client events received (audio payloads replaced by their length), oldest first
    received: list[Event]
    #: response objects, latest state
    responses: list[dict[str, Any]]

    @property
    def items(self) -> list[dict[str, Any]]:
        """The conversation items, in order."""
        ...

    def start(self) -> list[Event]:
        """The events a new session sends first (``session.created``)."""
        ...

    def receive_text(self, text: str, now: float) -> list[Event]:
        """One text frame from the client (malformed input becomes an ``error`` event)."""
        ...

    def receive_binary(self, data: bytes, now: float) -> list[Event]:
        """One binary frame from the client (the dialect decides whether it is allowed)."""
        ...

    def receive_audio(self, pcm: bytes, now: float) -> list[Event]:
        """Caller audio from a media path (WebRTC or RTP), as 24 kHz PCM16."""
        ...

    def get_timer(self) -> float | None:
        """The next deadline (paced audio, delayed transcripts), or None."""
        ...

    def handle_timer(self, now: float) -> list[Event]:
        """What is due at ``now``."""
        ...
