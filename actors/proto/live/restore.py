"""The Live restore strategy: a dropped Live session cannot be resumed, so it is re-created.

Live has no in-place resume: a lost socket ends the session (``session.closed`` reason
``connection_lost``). The next connection starts a *new* session whose ``session.start`` carries
the conversation so far as text ``input`` (``../shared/PROTOCOL.md`` §6; ``initial_item``: user,
assistant and developer messages, one text part each, at most :data:`MAX_INPUT_ITEMS` messages
and about :data:`MAX_INPUT_TOKENS` rendered tokens). ``fork`` is not used: it needs ``store:
true`` and a finalized recording, so it cannot restore a session that was just dropped.

On every connection of a Live session, in order:

1. **greeting** (written before ``session.started``, the only thing Live accepts first):
   ``session.start`` with the session's configuration and the mirror's conversation as
   ``input``, newest kept when over the limits (the oldest that do not fit are *not restored*
   and counted in the restore summary's ``skipped_items``, published as a ``dropped`` event of
   category ``restore``). If an answer is owed (a response was unfinished at the drop, or a
   ``response.create`` was never answered), the trailing user text after the last assistant
   message is left out of ``input``: it is re-sent live (step 2) so the new session answers it,
   once.
2. after ``session.started``: the owed user text as ``session.commentary.append`` (the same
   item ids), then written-but-unacknowledged item creates, then the owed ``response.create``
   (kept pending, not written: Live answers by itself), then the audio turns in flight
   (:mod:`actors.proto.turns`: their appends; commit and ``response.create`` are not written).
   Live answers input, never a bare request, so at most as many ``response.create`` stay owed
   as inputs go out now (the newest); an older one (whose answer the drop cut short, with no
   user text left to re-send) is let go rather than waited for forever.

Exactly once then means: every client item is in the new session once (seeded or re-sent) or
reported as not restored; every owed answer is asked for once.
"""

from __future__ import annotations

from typing import Any

from actors.proto.client_values import RestoreSummary
from actors.proto.live.config import start_event
from actors.proto.live.edge import item_text

__all__ = ["MAX_INPUT_ITEMS", "MAX_INPUT_TOKENS", "greeting", "restore"]

#: ``session.start`` ``input``: at most 128 messages (``types/live/session_config.py``)
MAX_INPUT_ITEMS = 128
#: … and a rendered-token limit, 8,192 by default; estimated here at 4 characters a token
MAX_INPUT_TOKENS = 8192
_CHARS_PER_TOKEN = 4
_ROLES = {"user": "user", "assistant": "assistant", "system": "developer"}


def greeting(core: Any) -> list[dict[str, Any]]:
    """The ``session.start`` of a new connection (``core``: a ClientCore with a Live edge)."""
    edge = core.edge
    items = [e["item"] for e in core.mirror.replay_events()] if core.replay else []
    skipped = core.mirror.last_skipped if core.replay else 0
    owed = core._reissue is not None or any(
        e["type"] == "response.create" for e in core._pending.values())
    # user text taken out of the mirror by an earlier greeting whose connection never got to
    # session.started: still owed, still first (nothing reached the mirror since)
    resend: list[dict[str, Any]] = edge.resend
    edge.resend = []
    if owed:
        trailing = []
        while items and items[-1].get("role") == "user":
            trailing.insert(0, items.pop())
        resend += trailing
    seed = []
    budget = MAX_INPUT_TOKENS * _CHARS_PER_TOKEN
    for item in reversed(items):
        text = item_text(item)
        role = _ROLES.get(item.get("role", ""))
        if role is None or not text:
            skipped += 1
            continue
        if len(seed) >= MAX_INPUT_ITEMS or len(text) > budget:
            skipped += 1
            continue
        budget -= len(text)
        part = "output_text" if role == "assistant" else "input_text"
        seed.append({"type": "message", "role": role, "content": [{"type": part, "text": text}]})
    seed.reverse()
    for item in resend:  # re-sent live: out of the mirror until the server adds it again
        core.mirror.apply_server({"type": "conversation.item.deleted", "item_id": item["id"]})
    edge.resend = resend
    edge.seeded, edge.not_restored = len(seed), skipped
    model = core.config.model if core.config is not None else None
    return [core._stamp(start_event(core.config, model, seed))]


def restore(core: Any, out: list[dict[str, Any]]) -> None:
    """Step 2 of the module docstring, after ``session.started``."""
    edge = core.edge
    replayed_before = core.turns.replayed
    turn_events, core._turn_notice = core.turns.take_replay() if core.replay else ([], None)
    for item in edge.resend:
        event = core._stamp({"type": "conversation.item.create", "item": item})
        core._note_written(event)
        out.append(event)
    edge.resend = []
    resent = list(core._pending.values())
    resent = [e for e in resent if e["type"] != "response.create" and e not in out]
    out.extend(resent)
    core._resent += len(resent)
    reissue, core._reissue = core._reissue, None
    if reissue is not None and reissue["event_id"] not in core._pending:
        core._add_pending(reissue["event_id"], reissue)
        core._reissued += 1
    for event in turn_events:  # a manual audio turn's own request: owed like the others
        if event["type"] == "response.create" and event["event_id"] not in core._pending:
            core._add_pending(event["event_id"], event)
    appends = [e for e in turn_events if e["type"] == "input_audio_buffer.append"]
    out.extend(appends)
    # Live answers input, never a bare request: keep as many owed answers as there are inputs
    # going out now (user text re-sent, unacknowledged item creates, audio turns); an older
    # request (for an answer already given, e.g. one the drop cut short) cannot be asked again
    inputs = sum(1 for e in out if e["type"] == "conversation.item.create")
    inputs += core.turns.replayed - replayed_before
    requests = [e["event_id"] for e in core._pending.values() if e["type"] == "response.create"]
    drop = len(requests) - min(len(requests), inputs)
    for event_id in requests[:drop]:
        core._unpend(event_id)
    core._pending_responses.extend(requests[drop:])
    core.turns.track_replayed(appends)
    core._replayed += edge.seeded
    core._skipped += edge.not_restored
    core.last_restore = RestoreSummary(
        core.connections, core.session_id, True, edge.seeded, edge.not_restored, len(resent),
        reissue is not None, replayed_turns=core.turns.replayed - replayed_before,
    )
