"""ClientCore across lost connections, against a tiny in-memory realtime server.

The design goal under test: however many connections are lost, at whatever point, each
submitted ``conversation.item.create`` ends up exactly once in the final connection's
conversation, in submit order, and each ``response.create`` is answered exactly once.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors.proto.client import ClientCore
from actors.proto.errors import QueueFull
from actors.proto.realtime.events import encode_client_event
from actors.proto.session import SessionConfig


class FakeServer:
    """One server session: a conversation, and the frames it has yet to deliver.

    Responses are atomic on the server (all of their events are queued at once) and each
    answers with one assistant item whose text names the request's ``event_id``.
    """

    def __init__(self, number: int) -> None:
        self.sid = f"sess_{number}"
        self.conversation: list[dict[str, Any]] = []
        self.outbox: deque[str] = deque()
        self.errors: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self._n = 0
        self._emit({"type": "session.created", "session": {"id": self.sid, "expires_at": 3600}})

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self.sid}_{self._n}"

    def _emit(self, event: dict[str, Any]) -> None:
        event = {"event_id": self._id("event"), **event}
        self.outbox.append(json.dumps(event))

    def _error(self, event: dict[str, Any], code: str) -> None:
        error = {"type": "invalid_request_error", "code": code, "message": code,
                 "event_id": event.get("event_id")}
        self.errors.append(error)
        self._emit({"type": "error", "error": error})

    def _insert(self, item: dict[str, Any], previous: str | None) -> str | None:
        ids = [i["id"] for i in self.conversation]
        if previous is None:
            index = len(ids)
        elif previous == "root":
            index = 0
        else:
            index = ids.index(previous) + 1
        self.conversation.insert(index, item)
        return self.conversation[index - 1]["id"] if index else None

    def handle(self, frame: str) -> None:
        event = json.loads(frame)
        self.received.append(event)
        kind = event["type"]
        if kind == "session.update":
            self._emit({"type": "session.updated", "session": event["session"]})
        elif kind == "conversation.item.create":
            item = dict(event["item"], status="completed", object="realtime.item")
            ids = {i["id"] for i in self.conversation}
            previous = event.get("previous_item_id")
            if item["id"] in ids:
                return self._error(event, "item_already_exists")
            if previous not in (None, "root") and previous not in ids:
                return self._error(event, "previous_item_not_found")
            before = self._insert(item, previous)
            self._emit({"type": "conversation.item.added", "previous_item_id": before,
                        "item": item})
            self._emit({"type": "conversation.item.done", "previous_item_id": before, "item": item})
        elif kind == "response.create":
            self._respond(event)

    def _respond(self, request: dict[str, Any]) -> None:
        rid = self._id("resp")
        iid = self._id("item")
        text = f"answer:{request['event_id']}"
        self._emit({"type": "response.created", "response": {"id": rid, "status": "in_progress",
                                                            "conversation_id": "conv_1"}})
        partial = {"id": iid, "type": "message", "role": "assistant", "status": "in_progress",
                   "content": []}
        base = {"response_id": rid, "output_index": 0}
        self._emit({"type": "response.output_item.added", **base, "item": partial})
        before = self._insert(partial, None)
        self._emit({"type": "conversation.item.added", "previous_item_id": before, "item": partial})
        self._emit({"type": "response.output_text.done", **base, "item_id": iid,
                    "content_index": 0, "text": text})
        done = {**partial, "status": "completed",
                "content": [{"type": "output_text", "text": text}]}
        self.conversation[-1] = done
        self._emit({"type": "response.output_item.done", **base, "item": done})
        self._emit({"type": "conversation.item.done", "previous_item_id": before, "item": done})
        self._emit({"type": "response.done", "response": {"id": rid, "status": "completed"}})


def text_item(marker: str, item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "message", "role": "user",
                            "content": [{"type": "input_text", "text": marker}]}
    if item_id is not None:
        item["id"] = item_id
    return {"type": "conversation.item.create", "item": item}


class Harness:
    """A client, the server of its current connection, and the wire between them."""

    def __init__(self) -> None:
        self.client = ClientCore(SessionConfig(instructions="be brief", voice="marin"),
                                 audio_limit=3, control_limit=16)
        self.server: FakeServer | None = None
        self.wire: deque[str] = deque()  # written by the client, not yet read by the server
        self.servers: list[FakeServer] = []
        self.items: list[str] = []
        self.responses: list[str] = []
        self.audio: list[str] = []  # event ids of appends and commits, in submit order
        self.notices = 0
        self.refused = 0

    def connect(self) -> None:
        self.client.connection_started()
        self.server = FakeServer(len(self.servers) + 1)
        self.servers.append(self.server)

    def drop(self) -> None:
        self.client.connection_lost()
        self.server = None
        self.wire.clear()

    def submit(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """Submit; ``None`` when the control queue refused it (nothing was enqueued)."""
        before = self.client.counters.submitted
        try:
            self.notices += sum(n["count"] for n in self.client.submit(event))
        except QueueFull:
            assert self.client.queued_control == self.client.control_limit
            assert self.client.counters.submitted == before
            self.refused += 1
            return None
        return self.client.last_submitted

    def flush(self) -> None:
        self.wire.extend(encode_client_event(e) for e in self.client.outgoing())

    def serve(self, count: int) -> None:
        for _ in range(min(count, len(self.wire))):
            self.server.handle(self.wire.popleft())

    def deliver(self, count: int) -> None:
        outbox = self.server.outbox
        for _ in range(min(count, len(outbox))):
            for event in self.client.receive(outbox.popleft()):
                assert isinstance(event, dict), event

    def settle(self) -> None:
        if self.server is None:
            self.connect()
        for _ in range(1000):
            self.flush()
            if not self.wire and not self.server.outbox:
                return
            self.serve(len(self.wire))
            self.deliver(len(self.server.outbox))
        raise AssertionError("did not settle")

    def check_final(self) -> None:
        self.settle()
        final = self.server.conversation
        ids = [i["id"] for i in final]
        user_ids = [i for i in ids if i in set(self.items)]
        assert user_ids == self.items, "each item exactly once, in submit order"
        answers = [i["content"][0]["text"] for i in final if i["role"] == "assistant"]
        assert sorted(answers) == sorted(f"answer:{e}" for e in self.responses), (
            "each response.create answered exactly once"
        )
        assert all(not s.errors for s in self.servers), [s.errors for s in self.servers]
        assert self.client.pending == []
        assert self.client.queued_audio == self.client.queued_control == 0
        assert self.client.mirror.ids == ids
        # Audio and commits: at most once and in submit order on each connection; across
        # connections once, except the appends of a pre-speech tail re-sent after a drop (this
        # server never says speech_started, so no turn is replayed: only tails)
        firsts: list[str] = []
        for s in self.servers:
            received = [e["event_id"] for e in s.received
                        if e["type"].startswith("input_audio_buffer.")]
            assert len(received) == len(set(received))
            positions = [self.audio.index(e) for e in received]
            assert positions == sorted(positions)
            firsts += [e for e in received if e not in firsts]
        positions = [self.audio.index(e) for e in firsts]
        assert positions == sorted(positions)
        copies = sum(1 for s in self.servers for e in s.received
                     if e["type"].startswith("input_audio_buffer."))
        assert copies - len(firsts) <= self.client.turns.resent_pre_speech  # (some were lost on the wire)
        assert self.client.counters.dropped_audio == self.notices


class ReconnectMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()
        self.h.connect()

    @rule(with_id=st.booleans())
    def submit_item(self, with_id: bool) -> None:
        n = len(self.h.items) + 1
        event = self.h.submit(text_item(f"user {n}", f"u{n}" if with_id else None))
        if event is not None:
            self.h.items.append(event["item"]["id"])

    @rule()
    def submit_response(self) -> None:
        event = self.h.submit({"type": "response.create"})
        if event is not None:
            self.h.responses.append(event["event_id"])

    @rule(commit=st.booleans())
    def submit_audio(self, commit: bool) -> None:
        event = {"type": "input_audio_buffer.commit"} if commit else {
            "type": "input_audio_buffer.append", "audio": "AAAA"}
        submitted = self.h.submit(event)
        if submitted is not None:
            self.h.audio.append(submitted["event_id"])

    @precondition(lambda self: self.h.server is not None)
    @rule()
    def flush(self) -> None:
        self.h.flush()

    @precondition(lambda self: self.h.server is not None)
    @rule(count=st.integers(1, 8))
    def serve(self, count: int) -> None:
        self.h.serve(count)

    @precondition(lambda self: self.h.server is not None)
    @rule(count=st.integers(1, 12))
    def deliver(self, count: int) -> None:
        self.h.deliver(count)

    @precondition(lambda self: self.h.server is not None)
    @rule(served=st.integers(0, 10), delivered=st.integers(0, 30))
    def pump(self, served: int, delivered: int) -> None:
        """Write, let the server read some, deliver some of its frames: a busy link."""
        self.h.flush()
        self.h.serve(served)
        self.h.deliver(delivered)

    @precondition(lambda self: self.h.server is not None)
    @rule(reconnect=st.booleans())
    def drop(self, reconnect: bool) -> None:
        self.h.drop()
        if reconnect:
            self.h.connect()

    @precondition(lambda self: self.h.server is None)
    @rule()
    def reconnect(self) -> None:
        self.h.connect()

    @invariant()
    def nothing_written_before_session_created(self) -> None:
        if self.h.server is not None and not self.h.client.ready:
            assert self.h.client.outgoing() == []

    def teardown(self) -> None:
        self.h.check_final()


TestReconnectMachine = ReconnectMachine.TestCase
TestReconnectMachine.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


SCRIPT = [
    text_item("one", "u1"),
    {"type": "response.create"},
    text_item("two", "u2"),
    {"type": "response.create"},
    text_item("three"),
]


@pytest.mark.parametrize("cut", range(40))
@pytest.mark.parametrize("cut_wire", [False, True])
def test_connection_lost_after_every_frame(cut: int, cut_wire: bool) -> None:
    """Lose the connection after ``cut`` server frames (and, with ``cut_wire``, also
    before the server read what the client wrote), then again on the restore."""
    h = Harness()
    h.connect()
    for event in SCRIPT:
        submitted = h.submit(event)
        if event["type"] == "response.create":
            h.responses.append(submitted["event_id"])
        else:
            h.items.append(submitted["item"]["id"])
    h.deliver(1)  # session.created
    h.flush()
    if not cut_wire:
        h.serve(len(h.wire))
    h.deliver(cut)
    h.drop()
    h.connect()
    h.deliver(1)
    h.flush()
    h.serve(len(h.wire))
    h.deliver(cut // 2)
    h.drop()
    h.check_final()
    assert h.client.connections >= 2


def test_settled_waits_for_the_restore_to_be_acknowledged() -> None:
    """``settled``: connected is not enough; the restore must be written and every replayed
    item and the config update acknowledged by the new server session."""
    import json

    from actors.proto.client import ClientCore

    J = json.dumps
    user = {"id": "item_u1", "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": "hello"}]}
    from actors.proto.session import SessionConfig

    core = ClientCore(SessionConfig.from_dict({"type": "realtime", "instructions": "be brief"}))
    core.connection_started()
    core.receive(J({"type": "session.created", "session": {"id": "sess_1"}}))
    first = core.outgoing()
    assert not core.settled  # the config update is written but not acknowledged
    core.receive(J({"type": "session.updated", "session": {"id": "sess_1"}}))
    core.receive(J({"type": "conversation.item.added", "previous_item_id": None, "item": user}))
    assert core.settled and [e["type"] for e in first] == ["session.update"]

    core.connection_lost()
    assert not core.settled
    core.connection_started()
    core.receive(J({"type": "session.created", "session": {"id": "sess_2"}}))
    assert not core.settled  # connected, restore not yet written
    restore = core.outgoing()
    assert [e["type"] for e in restore] == ["session.update", "conversation.item.create"]
    core.receive(J({"type": "session.updated", "session": {"id": "sess_2"}}))
    assert not core.settled  # the replayed item is not in the new conversation yet
    core.receive(J({"type": "conversation.item.added", "previous_item_id": None, "item": user}))
    assert core.settled
