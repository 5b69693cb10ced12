"""``ClientCore(replay=False)``: a ``?call_id=`` sideband re-attaching to a live call restores
its config without replaying the conversation or re-issuing the call's running response."""

from __future__ import annotations

import json

from actors.proto.client import ClientCore
from actors.proto.session import SessionConfig


def _created(n: int) -> str:
    return json.dumps({"type": "session.created", "event_id": f"e{n}", "session": {
        "type": "realtime", "id": f"sess_{n}", "object": "realtime.session", "model": "m",
        "expires_at": 0}})


def _run_turn(core: ClientCore) -> None:
    core.connection_started()
    core.receive(_created(1))
    core.outgoing()
    item = {"id": "item_1", "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": "hi"}]}
    core.receive(json.dumps({"type": "conversation.item.added", "event_id": "e2", "item": item,
                             "previous_item_id": None}))
    core.receive(json.dumps({"type": "response.created", "event_id": "e3", "response": {
        "id": "resp_1", "object": "realtime.response", "status": "in_progress", "output": []}}))
    core.connection_lost()
    core.connection_started()
    core.receive(_created(2))


def test_sideband_restore_sends_config_only() -> None:
    core = ClientCore(SessionConfig.from_dict({"type": "realtime", "instructions": "x"}), replay=False)
    _run_turn(core)
    assert [e["type"] for e in core.outgoing()] == ["session.update"]
    assert core.last_restore.replayed_items == 0 and not core.last_restore.reissued_response


def test_default_restore_replays() -> None:
    core = ClientCore(SessionConfig.from_dict({"type": "realtime", "instructions": "x"}))
    _run_turn(core)
    assert [e["type"] for e in core.outgoing()] == ["session.update", "conversation.item.create",
                                                    "response.create"]
