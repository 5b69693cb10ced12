"""What every transport does with an incoming realtime frame (shared by the actors).

``handle_incoming`` feeds one frame (WebSocket message or data-channel message) to the
session's :class:`~actors.proto.client.ClientCore` and publishes the results: ``server``
events, ``protocol_error`` events for bad input (the connection lives on), a ``dropped`` event (category ``restore``)
when the session's memory bound evicted restore data, and it notes in
the connection's :class:`InboundState` what decides how the connection ends (an auth
refusal, the server's ``session_expired``).
"""

from __future__ import annotations

import attrs
import trio

from actors.events import EventKind
from actors.link import SessionLink
from actors.proto.client_values import SessionMemoryLimit
from actors.proto.errors import ProtocolError
from actors.proto.turns import TurnLost

__all__ = ["AUTH_ERROR_CODES", "QUIET_TICKS", "InboundState", "handle_incoming", "end_quiet_answers"]

#: ticks a Live answer's quiet gap is counted in (see :func:`end_quiet_answers`)
QUIET_TICKS = 6

#: ``error.code`` values that mean the credential was refused
AUTH_ERROR_CODES = frozenset({"invalid_api_key", "invalid_client_secret", "expired_client_secret",
                              "authentication_error", "unauthorized"})


@attrs.define
class InboundState:
    """Per-connection facts learnt from incoming events."""

    auth_error: str = ""
    expired: bool = False
    call_id: str | None = None
    #: the reason of a Live ``session.closed`` (decides how the connection ends)
    closed_reason: str | None = None


def handle_incoming(link: SessionLink, state: InboundState, message: str | bytes) -> None:
    was_ready = link.core.ready
    emit = link.emit
    for item in link.core.receive(message):
        if type(item) is not dict:  # a server event is a dict: none of these checks for it
            if isinstance(item, SessionMemoryLimit):
                # a limit enforced, not bad input: reported as restore data dropped by policy
                detail = item.to_payload().get("detail") or {}
                emit(EventKind.DROPPED, {
                    "count": detail.get("evicted_items", 0) + detail.get("evicted_pending", 0),
                    "category": "restore", "reason": "session_memory_limit", **detail})
                continue
            if isinstance(item, TurnLost):
                # an audio turn in flight at the drop that could not be replayed: it fails now
                detail = item.to_payload().get("detail") or {}
                emit(EventKind.DROPPED, {"count": detail.get("turns", 1), "category": "turn",
                                         "reason": str(detail.get("reason", "turn_lost"))})
                continue
            if isinstance(item, ProtocolError):
                emit(EventKind.PROTOCOL_ERROR, item.to_payload())
                continue
        kind = item["type"]
        if kind == "error":
            code = (item.get("error") or {}).get("code")
            if code in AUTH_ERROR_CODES:
                state.auth_error = f"authentication rejected ({code})"
            elif code == "session_expired":
                state.expired = True
        elif kind == "session.closed":
            state.closed_reason = item["reason"]
        emit(EventKind.SERVER, item)
    if link.core.ready and not was_ready:
        link.wake_writer()
    if link.core.answer_open:
        link.answer_opened.set()


async def end_quiet_answers(link: SessionLink) -> None:
    """GPT-Live marks no answer's end: end each open answer once its output has been quiet for
    the edge's ``answer_gap`` (the events that end it are published like received ones).

    The quiet is counted in ticks, :data:`QUIET_TICKS` to a gap, each worth one tick however
    long it took: time the process did not run (a loaded box, a long GC; the trio clock
    jumped) counts as one tick, and the answer's next words are read before the next tick.
    One sleep of the whole gap could not tell a quiet server from a stalled client: after a
    stall as long as the gap, the timer woke before the answer's next words were read (an
    embedded server had not even sent them yet) and ended the answer as ``completed`` with
    its first word only (a flaky 50-session fleet test on a loaded box)."""
    core = link.core
    gap = core.edge.answer_gap
    tick = gap / QUIET_TICKS
    while True:
        await link.answer_opened.wait()
        link.answer_opened = trio.Event()
        seen, quiet = core.edge.outputs, 0
        while core.answer_open:
            await trio.sleep(tick)
            if core.edge.outputs != seen:
                seen, quiet = core.edge.outputs, 0
                continue
            quiet += 1
            if quiet >= QUIET_TICKS and core.answer_open:
                for item in core.output_quiet():
                    if isinstance(item, ProtocolError):
                        link.emit(EventKind.PROTOCOL_ERROR, item.to_payload())
                    else:
                        link.emit(EventKind.SERVER, item)
