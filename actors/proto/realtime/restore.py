"""The Realtime restore strategy: what a new connection is sent first so the session goes on.

The first :meth:`~actors.proto.client.ClientCore.outgoing` after ``session.created`` on every
connection writes, in order (see ClientCore's docstring for the guarantees):

1. ``session.update`` with the current :class:`~actors.proto.session.SessionConfig`;
2. the conversation as ``conversation.item.create`` events from the mirror (not for a
   ``?call_id=`` sideband, whose call kept its conversation: ``replay=False``; nor for a
   transcription session, which has no conversation to go on with);
3. written-but-unacknowledged item and response creates, in their original order;
4. a ``response.create`` re-issuing the response that was active at the drop (unless it was
   cancelled, is among (3), or belongs to an audio turn replayed in (5));
5. the audio turns in flight at the drop (:mod:`actors.proto.turns`), with their own commit and
   ``response.create``.

This is the Realtime dialect's ``restore`` (:mod:`actors.proto.dialect`): it works on the
core's acknowledgement books directly (the core is its only caller). GPT-Live cannot resume a
session: its restore will open a new session seeded with text instead.
"""

from __future__ import annotations

from typing import Any

from actors.proto.client_values import RestoreSummary

__all__ = ["restore"]

RESPONSE_CREATE = "response.create"


def restore(core: Any, out: list[dict[str, Any]]) -> None:
    """Append the restore sequence of a new connection to ``out`` (``core``: a ClientCore)."""
    for item_id in [i for i in core._pending_items if core.mirror.item(i) is not None]:
        core._ack(core._pending_items[item_id])  # defensive: already in the conversation
    # audio turns in flight at the drop: re-sent last, their own commit/response.create with them
    replayed_before = core.turns.replayed
    if core.replay:
        turn_events, core._turn_notice = core.turns.take_replay()
    else:  # a sideband: the call's own input buffer survived the socket
        turn_events = []
        core.turns.reset()
    in_turns = {e["event_id"] for e in turn_events if e["type"] == RESPONSE_CREATE}
    resent = [e for e in core._pending.values() if e["event_id"] not in in_turns]
    config_sent = core.config is not None
    if core.config is not None:
        update = core._stamp(core.config.to_update_event())
        core._note_written(update)
        out.append(update)
    # a transcription session has no conversation to go on with: only its audio in flight
    conversation = core.replay and not (core.config is not None and core.config.transcribes)
    replay = core.mirror.replay_events() if conversation else []
    for event in replay:
        out.append(core._stamp(event))
    core._replay_waiting = {event["item"]["id"] for event in replay}
    core._replayed += len(replay)
    core._skipped += core.mirror.last_skipped if conversation else 0
    out.extend(resent)
    core._resent += len(resent)
    reissue, core._reissue = core._reissue, None
    if not core.replay:
        reissue = None
    if reissue is not None:
        core._add_pending(reissue["event_id"], reissue)
        out.append(reissue)
        core._reissued += 1
    for event in turn_events:
        if event["type"] == RESPONSE_CREATE and event["event_id"] not in core._pending:
            core._add_pending(event["event_id"], event)  # acked before, unanswered: again
        out.append(event)
    # Responses are acked FIFO: rebuild the queue in this connection's write order.
    core._pending_responses.extend(
        e["event_id"] for e in out
        if e["type"] == RESPONSE_CREATE and e["event_id"] in core._pending
    )
    core.turns.track_replayed(turn_events)
    core.last_restore = RestoreSummary(
        core.connections, core.session_id, config_sent, len(replay),
        core.mirror.last_skipped if conversation else 0, len(resent), reissue is not None,
        replayed_turns=core.turns.replayed - replayed_before,
    )
