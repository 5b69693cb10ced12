"""The seam between the shared client machinery and a protocol dialect (sans-I/O).

rtfleet speaks more than one realtime protocol behind one actor contract: the Realtime API
(``/v1/realtime``, GA with the beta shape at the edge) today, GPT-Live (``/v1/live/sessions``,
issue 11) next. What every dialect shares stays in :mod:`actors.proto`:
:class:`~actors.proto.client.ClientCore` (the outbound queues, submit order, acknowledgements,
the memory bound, audio turns in flight), the :class:`~actors.proto.mirror.SessionMirror`'s
bookkeeping, :mod:`~actors.proto.audio`, :mod:`~actors.proto.errors`. What a dialect *says* is
behind :class:`Dialect`; :data:`actors.proto.realtime.dialect.REALTIME` is the first one.

What each dialect provides (Realtime's column is where it lives today; issue 11 adds Live's):

=====================  ===========================================  ===========================
member                 what it is                                   Realtime
=====================  ===========================================  ===========================
``name``               "realtime" / "live"                          ``realtime/dialect.py``
``parse_server_event``  one received frame -> a checked event dict,  ``realtime/events.py``
                       or ProtocolError (never raises otherwise);   (+ ``beta.py`` when the
                       ``variant`` is the wire shape ("ga"/"beta")  variant is "beta")
``validate_client_event``  a client event is well formed, or raises  ``realtime/events.py``
                       ProtocolError(local=True)
``to_wire``            a checked client event as the wire variant   ``realtime/beta.py``
                       wants it (identity for GA)
``acks``               server event type -> the acknowledgement     ``realtime/dialect.py``
                       kind it is (session_started, config_acked,
                       item_added, item_deleted, response_started,
                       response_done, error)
``session_info``       id and expiry from a session-started event   ``realtime/events.py``
``error_event_id``     which client event an ``error`` names        ``realtime/events.py``
``restore``            what a new connection is sent first so the   ``realtime/restore.py``
                       session goes on (Realtime: session.update,
                       the conversation replayed, unacknowledged
                       creates, the unfinished response, audio
                       turns in flight; Live: a new session seeded
                       with text input, what cannot be restored
                       reported)
``max_append_audio``   the largest audio payload one append takes   ``realtime/events.py``
=====================  ===========================================  ===========================

Not yet behind the seam (Realtime-shaped, named here so issue 11 moves them rather than
branching on the protocol): the session config's wire shape
(:class:`~actors.proto.session.SessionConfig`'s ``to_update_event`` / ``from_dict``), the
mirror's item shapes (:mod:`actors.proto.mirror`), and the event names audio turns move on
(:mod:`actors.proto.turns`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["ACK_KINDS", "Dialect", "check_dialect"]

#: the acknowledgement kinds ClientCore's machinery acts on (``Dialect.acks`` values)
ACK_KINDS = frozenset({"session_started", "config_acked", "item_added", "item_deleted",
                       "response_started", "response_done", "error"})


class Dialect(Protocol):
    """What one realtime protocol provides to the shared client machinery."""

    name: str
    max_append_audio: int
    acks: Mapping[str, str]

    def parse_server_event(self, data: str | bytes | bytearray, *, max_size: int,
                           variant: str) -> dict[str, Any]:
        """One frame in; the checked event, or raises ProtocolError (bad peer input)."""
        ...

    def validate_client_event(self, event: dict[str, Any]) -> dict[str, Any]: ...

    def to_wire(self, event: dict[str, Any], variant: str) -> dict[str, Any]: ...

    def session_info(self, event: dict[str, Any]) -> tuple[str | None, int | None]:
        """``(session id, expires_at)`` from the session-started event."""
        ...

    def error_event_id(self, event: dict[str, Any]) -> str | None: ...

    def restore(self, core: Any, out: list[dict[str, Any]]) -> None:
        """Append to ``out`` what a new connection is sent first (see the table); ``core`` is
        the :class:`~actors.proto.client.ClientCore` whose books it reads and updates."""
        ...


def check_dialect(dialect: Any) -> None:
    """ValueError unless ``dialect``'s ack table uses only the kinds ClientCore knows."""
    unknown = set(dialect.acks.values()) - ACK_KINDS
    if unknown:
        raise ValueError(f"dialect {dialect.name!r}: unknown ack kinds {sorted(unknown)}")

