from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.proto.client import ClientCore
from actors.proto.client_values import ClientCounters
from actors.proto.errors import ProtocolError, QueueFull, SessionConfigError
from actors.proto.session import SessionConfig


def frame(event: dict[str, Any]) -> str:
    return json.dumps({"event_id": "event_x", **event})


def item(text: str, item_id: str | None = None, role: str = "user") -> dict[str, Any]:
    body: dict[str, Any] = {"type": "message", "role": role,
                            "content": [{"type": "input_text" if role == "user" else "output_text",
                                         "text": text}]}
    if item_id:
        body["id"] = item_id
    return {"type": "conversation.item.create", "item": body}


APPEND = {"type": "input_audio_buffer.append", "audio": "AAAA"}


def ready(core: ClientCore, sid: str = "sess_1", **session: Any) -> list[dict[str, Any]]:
    """Start a connection, deliver session.created, return the first writes."""
    core.connection_started()
    assert core.outgoing() == []
    [event] = core.receive(frame({"type": "session.created", "session": {"id": sid, **session}}))
    assert event["type"] == "session.created"
    return core.outgoing()


def ack_item(core: ClientCore, event: dict[str, Any], previous: str | None = None) -> None:
    core.receive(frame({"type": "conversation.item.added", "item": event["item"],
                        "previous_item_id": previous}))


def created(core: ClientCore, rid: str) -> None:
    core.receive(frame({"type": "response.created", "response": {"id": rid}}))


def test_nothing_is_written_until_session_created() -> None:
    core = ClientCore(SessionConfig())
    core.submit(item("hi"))
    assert not core.ready and core.outgoing() == []
    core.connection_started()
    assert core.connected and not core.ready and core.outgoing() == []
    out = ready(core, expires_at=1234)
    assert core.ready and core.session_id == "sess_1" and core.expires_at == 1234
    assert [e["type"] for e in out] == ["session.update", "conversation.item.create"]
    assert core.outgoing() == []  # the restore happens once per connection
    assert core.last_restore.connection == 1 and core.last_restore.config_sent


def test_without_config_no_session_update() -> None:
    core = ClientCore()
    core.submit({"type": "input_audio_buffer.commit"})
    assert [e["type"] for e in ready(core)] == ["input_audio_buffer.commit"]


def test_submit_assigns_ids_without_touching_the_callers_dict() -> None:
    core = ClientCore()
    mine = item("hi")
    core.submit(mine)
    assert "event_id" not in mine and "id" not in mine["item"]
    first = core.last_submitted
    core.submit(item("again"))
    second = core.last_submitted
    assert first["event_id"].startswith("evt_c_") and first["item"]["id"].startswith("item_c_")
    assert first["event_id"] != second["event_id"] and first["item"]["id"] != second["item"]["id"]
    core.submit({"type": "response.create", "event_id": "mine-1"})
    assert core.last_submitted["event_id"] == "mine-1"
    core.submit(item("kept", "item_custom"))
    assert core.last_submitted["item"]["id"] == "item_custom"


@settings(deadline=None)
@given(st.lists(st.sampled_from(["append", "item", "commit", "response"]), max_size=40))
def test_ids_are_unique_and_order_is_submit_order(kinds: list[str]) -> None:
    core = ClientCore(audio_limit=1000)
    events = {"append": APPEND, "item": item("x"), "commit": {"type": "input_audio_buffer.commit"},
              "response": {"type": "response.create"}}
    submitted = []
    for kind in kinds:
        core.submit(events[kind])
        submitted.append(core.last_submitted["event_id"])
    out = ready(core)
    assert [e["event_id"] for e in out] == submitted
    assert len(set(submitted)) == len(submitted)


def test_invalid_events_are_refused_and_not_enqueued() -> None:
    core = ClientCore()
    with pytest.raises(ProtocolError) as info:
        core.submit({"type": "conversation.item.create", "item": {"type": "message"}})
    assert info.value.local and info.value.detail["field"] == "item.role"
    with pytest.raises(ProtocolError) as info:
        core.submit({"type": "response.create", "event_id": "evt_c_9"})
    assert "reserved" in info.value.message
    core.submit({"type": "response.create", "event_id": "dup"})
    with pytest.raises(ProtocolError) as info:
        core.submit({"type": "response.cancel", "event_id": "dup"})
    assert info.value.detail["field"] == "event_id"
    assert core.counters.submitted == 1 and core.queued_control == 1


def test_audio_queue_drops_oldest_with_a_notice() -> None:
    core = ClientCore(audio_limit=3)
    ids = []
    notices = []
    for _ in range(5):
        notices += core.submit(APPEND)
        ids.append(core.last_submitted["event_id"])
    assert notices == [{"count": 1, "category": "audio",
                        "reason": "audio queue full while not connected"}] * 2
    assert core.queued_audio == 3 and core.counters.dropped_audio == 2
    assert [e["event_id"] for e in ready(core)] == ids[2:]
    for _ in range(4):
        notices = core.submit(APPEND)  # ready, but nobody drains: the writer is behind
    assert notices[0]["reason"] == "audio queue full: writer not keeping up"
    assert core.counters.dropped_audio == 3


def test_control_queue_full_raises_and_enqueues_nothing() -> None:
    core = ClientCore(control_limit=2)
    core.submit(item("a"))
    core.submit({"type": "response.create"})
    for _ in range(3):  # audio is not limited by the control queue
        core.submit(APPEND)
    with pytest.raises(QueueFull) as info:
        core.submit({"type": "input_audio_buffer.commit"})
    assert info.value.local and info.value.detail == {"category": "control", "limit": 2}
    assert core.queued_control == 2 and core.counters.submitted == 5
    out = ready(core)
    assert len(out) == 5  # drained
    core.submit({"type": "input_audio_buffer.commit"})  # the retry now fits
    assert core.outgoing()[0]["type"] == "input_audio_buffer.commit"


def test_commit_stays_after_its_appends() -> None:
    core = ClientCore(audio_limit=2)
    core.submit(APPEND)
    core.submit(item("x"))
    core.submit(APPEND)
    core.submit(APPEND)  # drops the first append
    core.submit({"type": "input_audio_buffer.commit"})
    core.submit(APPEND)  # drops the second
    kinds = [e["type"].split(".")[-1] for e in ready(core)]
    assert kinds == ["create", "append", "commit", "append"]


def test_acknowledgements() -> None:
    core = ClientCore(SessionConfig())
    core.submit(item("a", "i1"))
    core.submit({"type": "response.create"})
    core.submit({"type": "response.create", "response": {"instructions": "second"}})
    out = ready(core)
    assert [e["type"] for e in core.pending] == ["session.update", "conversation.item.create",
                                                 "response.create", "response.create"]
    core.receive(frame({"type": "session.updated", "session": {}}))
    ack_item(core, out[1])
    created(core, "r1")  # FIFO: the first response.create
    assert core.pending == [out[3]]
    core.receive(frame({"type": "error", "error": {
        "message": "busy", "event_id": out[3]["event_id"],
        "code": "conversation_already_has_active_response"}}))
    core.receive(frame({"type": "error", "error": {"message": "nobody", "event_id": "evt_zz"}}))
    assert core.pending == []
    counters = core.counters
    assert (counters.acked, counters.failed, counters.written) == (3, 1, 4)
    core.receive(frame({"type": "response.done", "response": {"id": "r1", "status": "completed"}}))
    core.connection_lost()
    restore = ready(core)
    assert [e["type"] for e in restore] == ["session.update", "conversation.item.create"]
    assert restore[1]["item"]["id"] == "i1" and restore[1]["previous_item_id"] == "root"
    assert core.last_restore.resent == 0 and not core.last_restore.reissued_response


def test_restore_sequence_order_and_reissue() -> None:
    core = ClientCore(SessionConfig(voice="ash"))
    core.submit(item("one", "u1"))
    core.submit({"type": "response.create", "response": {"instructions": "answer one"}})
    core.submit(item("two", "u2"))
    first = ready(core)
    ack_item(core, first[1])
    created(core, "r1")  # active when the connection is lost; u2 was never acknowledged
    core.submit(item("three", "u3"))  # queued, not written
    core.connection_lost()
    assert not core.ready and not core.connected
    out = ready(core, sid="sess_2")
    assert [(e["type"], e.get("item", {}).get("id")) for e in out] == [
        ("session.update", None),
        ("conversation.item.create", "u1"),  # replayed
        ("conversation.item.create", "u2"),  # re-sent
        ("response.create", None),  # re-issued
        ("conversation.item.create", "u3"),  # queued
    ]
    assert out[1]["previous_item_id"] == "root"
    assert out[2] == first[3] and out[2]["event_id"] == first[3]["event_id"]
    assert out[3] == first[2]  # the original request, instructions and all
    assert core.session_id == "sess_2" and core.connections == 2
    summary = core.last_restore
    assert (summary.replayed_items, summary.resent, summary.reissued_response) == (1, 1, True)
    c = core.counters
    assert (c.replayed_items, c.resent, c.reissued_responses) == (1, 1, 1)


def test_unanswered_response_is_resent_not_duplicated() -> None:
    core = ClientCore()
    core.submit({"type": "response.create"})
    [request] = ready(core)
    core.connection_lost()
    assert ready(core) == [request]
    core.connection_lost()
    assert ready(core) == [request]  # re-sent again, once per connection, same event id
    created(core, "r1")
    core.receive(frame({"type": "response.done", "response": {"id": "r1"}}))
    core.connection_lost()
    assert ready(core) == []


def test_server_started_response_is_reissued_bare() -> None:
    core = ClientCore()
    ready(core)
    created(core, "r_vad")
    core.connection_lost()
    [event] = ready(core)
    assert event["type"] == "response.create" and set(event) == {"type", "event_id"}


def test_cancelled_response_is_not_reissued() -> None:
    core = ClientCore()
    ready(core)
    created(core, "r1")
    core.submit({"type": "response.cancel"})
    assert core.outgoing()[0]["type"] == "response.cancel"
    core.connection_lost()
    assert ready(core) == []


def test_unconfirmed_delete_is_applied_to_the_mirror() -> None:
    core = ClientCore()
    core.submit(item("a", "i1"))
    core.submit(item("b", "i2"))
    out = ready(core)
    ack_item(core, out[0])
    ack_item(core, out[1], "i1")
    core.submit({"type": "conversation.item.delete", "item_id": "i1"})
    core.submit({"type": "conversation.item.delete", "item_id": "i2"})
    deletes = core.outgoing()
    core.receive(frame({"type": "error", "error": {"message": "no",
                                                   "event_id": deletes[1]["event_id"]}}))
    core.connection_lost()
    assert [e["item"]["id"] for e in ready(core)] == ["i2"]  # i1 gone, i2's delete failed


def test_session_update_changes_the_config_sent_on_reconnect() -> None:
    core = ClientCore(SessionConfig(voice="ash"))
    ready(core)
    core.submit({"type": "session.update", "session": {"type": "realtime",
                                                       "audio": {"output": {"voice": "sage"}}}})
    assert core.config.voice == "sage"
    with pytest.raises(SessionConfigError):
        core.submit({"type": "session.update", "session": {"type": "realtime", "voice": 5}})
    assert core.queued_control == 1
    core.outgoing()
    core.connection_lost()
    [update] = ready(core)
    assert update["session"]["audio"]["output"]["voice"] == "sage"
    with pytest.raises(SessionConfigError, match="cannot change"):  # a session keeps its type
        core.submit({"type": "session.update", "session": {"type": "transcription"}})
    assert core.config.voice == "sage" and core.queued_control == 0
    fresh = ClientCore()
    fresh.submit({"type": "session.update", "session": {"type": "realtime", "instructions": "x"}})
    assert fresh.config == SessionConfig(instructions="x")


def test_output_format_sets_the_mirror_truncation_rate() -> None:
    core = ClientCore(SessionConfig(output_format="audio/pcmu"))
    assert core.mirror.output_bytes_per_ms == 8
    core.submit({"type": "session.update", "session": {
        "type": "realtime", "audio": {"output": {"format": {"type": "audio/pcm"}}}}})
    assert core.mirror.output_bytes_per_ms == 48


def test_connection_lifecycle_edges() -> None:
    core = ClientCore()
    core.connection_lost()  # not connected: nothing happens
    core.connection_started()
    core.connection_started()  # implies the previous one was lost
    core.receive(frame({"type": "session.created", "session": {"id": "s1"}}))
    core.receive(frame({"type": "session.created", "session": {"id": "s2"}}))  # ignored
    assert core.session_id == "s1" and core.connections == 1
    core.connection_lost()
    core.receive(frame({"type": "session.created", "session": {"id": "s3"}}))  # implicit start
    assert core.ready and core.connected and core.connections == 2


@settings(deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=50)))
def test_receive_never_raises_for_peer_input(data: str | bytes) -> None:
    core = ClientCore()
    core.connection_started()
    [result] = core.receive(data)
    assert isinstance(result, (dict, ProtocolError))
    if isinstance(result, ProtocolError):
        assert not result.local


def test_receive_reports_bad_frames_and_carries_on() -> None:
    core = ClientCore(max_frame=100)
    core.connection_started()
    codes = [r.code for data in (b"{}", "x" * 101, "{", "[]", "{}", '{"type":"nope"}',
                                 '{"type":"response.done"}')
             for r in core.receive(data)]
    assert codes == ["binary_frame", "oversized_frame", "malformed_json", "not_an_object",
                     "missing_type", "unknown_event_type", "invalid_field"]
    [event] = core.receive(frame({"type": "session.created", "session": {}}))
    assert core.ready and event["type"] == "session.created"


def test_counters_are_a_frozen_snapshot() -> None:
    core = ClientCore()
    snapshot = core.counters
    core.submit(APPEND)
    assert snapshot.submitted == 0 and core.counters.submitted == 1
    assert isinstance(snapshot, ClientCounters)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        snapshot.submitted = 3  # type: ignore[misc]


def test_limits_are_validated() -> None:
    for kwargs in ({"audio_limit": 0}, {"control_limit": -1}, {"max_frame": 0}):
        with pytest.raises(ValueError):
            ClientCore(**kwargs)


def test_written_events_are_valid_for_the_official_sdk() -> None:
    pydantic = pytest.importorskip("pydantic")
    types = pytest.importorskip("openai.types.realtime")
    adapter = pydantic.TypeAdapter(types.RealtimeClientEventParam)
    core = ClientCore(SessionConfig(voice="marin", transcription={"model": "whisper-1"},
                                    turn_detection={"type": "semantic_vad", "eagerness": "low"}))
    core.submit(item("hi", "u1"))
    core.submit({"type": "response.create"})
    core.submit(APPEND)
    out = ready(core)
    ack_item(core, out[1])
    core.connection_lost()
    out += ready(core)
    # the append is re-sent as a pre-speech tail (actors/proto/turns.py)
    assert [e["type"] for e in out[4:]] == ["session.update", "conversation.item.create",
                                           "response.create", "input_audio_buffer.append"]
    for event in out:
        adapter.validate_python(json.loads(json.dumps(event)))


def test_skipped_and_discarded_items_are_counted() -> None:
    core = ClientCore()
    ready(core)
    core.receive(frame({"type": "conversation.item.added", "previous_item_id": None, "item": {
        "id": "u1", "type": "message", "role": "user",
        "content": [{"type": "input_audio", "transcript": None}]}}))
    created(core, "r1")
    partial = {"id": "a1", "type": "message", "role": "assistant", "status": "in_progress",
               "content": []}
    core.receive(frame({"type": "response.output_item.added", "response_id": "r1",
                        "output_index": 0, "item": partial}))
    core.receive(frame({"type": "conversation.item.added", "previous_item_id": "u1",
                        "item": partial}))
    core.connection_lost()
    out = ready(core)
    assert [e["type"] for e in out] == ["response.create"]  # u1 has no transcript to replay
    counters = core.counters
    assert (counters.skipped_items, counters.discarded_items) == (1, 1)
    assert (counters.replayed_items, counters.reissued_responses) == (0, 1)
    assert core.last_restore.skipped_items == 1


def test_write_audio_now_is_submit_then_outgoing_when_nothing_is_queued() -> None:
    fast, slow = ClientCore(), ClientCore()
    ready(fast)
    ready(slow)
    for k in range(6):
        event = {"type": "input_audio_buffer.append", "audio": f"AAA{k}"}
        # the audio clock's form (the audio alone) and the general one write the same event
        written = fast.write_append_now(f"AAA{k}") if k % 2 else fast.write_audio_now(dict(event))
        assert slow.submit(dict(event)) == []
        assert [written] == slow.outgoing()
        assert list(written) == ["type", "audio", "event_id"]  # the encoder's one-template order
    assert fast.counters == slow.counters and fast.turns.open.events == slow.turns.open.events
    assert fast.write_append_now(3) is None
    # anything queued before it, a connection not ready, or another event: not this path
    fast.submit(item("hi"))
    assert fast.write_audio_now({"type": "input_audio_buffer.append", "audio": "AAAA"}) is None
    fast.outgoing()
    assert fast.write_audio_now({"type": "input_audio_buffer.commit"}) is None
    assert fast.write_audio_now({"type": "input_audio_buffer.append", "audio": 3}) is None
    fast.connection_lost()
    assert fast.write_audio_now({"type": "input_audio_buffer.append", "audio": "AAAA"}) is None
    assert fast.write_append_now("AAAA") is None
