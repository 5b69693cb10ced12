"""The per-session memory bound (issue 7, item 3): a long conversation keeps the client-side
restore data (mirror items and transcripts, unacknowledged creates, pending deletes) under
``max_restore_bytes``, evicts the oldest, and tells the session with an event."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import trio

from actors.events import EventKind, Transport, decode_event, encode_event
from actors.inbound import InboundState, handle_incoming
from actors.link import SessionLink
from actors.proto.client import ClientCore
from actors.proto.client_values import DEFAULT_MAX_RESTORE_BYTES, SessionMemoryLimit
from actors.proto.errors import ProtocolError
from actors.proto.mirror import DEFAULT_MAX_BYTES, SessionMirror, json_size

BOUND = 64 * 1024
J = json.dumps


def turn(n: int, words: int = 40) -> list[str]:
    """One spoken turn as the server sends it: user item + transcript, a response with an
    assistant audio item and its transcript."""
    user, assistant, response = f"item_u{n}", f"item_a{n}", f"resp_{n}"
    said = " ".join(f"user{n}-word{i}" for i in range(words))
    answer = " ".join(f"assistant{n}-word{i}" for i in range(words))
    item = {"id": assistant, "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_audio", "transcript": answer}]}
    part = {"response_id": response, "item_id": assistant, "output_index": 0, "content_index": 0}
    return [J(e) for e in (
        {"type": "conversation.item.added", "previous_item_id": None,
         "item": {"id": user, "type": "message", "role": "user", "status": "completed",
                  "content": [{"type": "input_audio", "transcript": None}]}},
        {"type": "conversation.item.input_audio_transcription.completed", "item_id": user,
         "content_index": 0, "transcript": said},
        {"type": "response.created", "response": {"id": response, "status": "in_progress"}},
        {"type": "response.output_item.added", "response_id": response, "output_index": 0,
         "item": {**item, "status": "in_progress", "content": []}},
        {"type": "conversation.item.added", "previous_item_id": user,
         "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.output_audio_transcript.done", **part, "transcript": answer},
        {"type": "response.output_item.done", "response_id": response, "output_index": 0, "item": item},
        {"type": "response.done", "response": {"id": response, "status": "completed"}},
    )]


SESSION_CREATED = J({"type": "session.created", "session": {"id": "sess_1"}})


def connected(core: ClientCore) -> ClientCore:
    core.connection_started()
    core.receive(SESSION_CREATED)
    core.outgoing()
    return core


def measured(core: ClientCore) -> int:
    """The retained restore data measured independently: compact JSON of what the mirror
    and the core hand out (items, tracked texts, pending events)."""
    mirror = core.mirror
    texts = {i: [mirror.text(i, k) for k in range(4) if mirror.text(i, k) is not None]
             for i in mirror.ids}
    data = [mirror.items(), texts, core.pending]
    return len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())


def test_defaults_and_knob() -> None:
    assert DEFAULT_MAX_RESTORE_BYTES == DEFAULT_MAX_BYTES == 4 * 2**20
    core = ClientCore()
    assert core.max_restore_bytes == core.mirror.max_bytes == DEFAULT_MAX_RESTORE_BYTES
    small = ClientCore(max_restore_bytes=BOUND)
    assert small.mirror.max_bytes == BOUND
    assert SessionMirror(max_bytes=None).max_bytes is None


def test_json_size_matches_compact_json() -> None:
    value = {"a": [1, 2.5, None, True, "é€"], "b": {"c": ""}, "d": [[]], "e": False}
    assert json_size(value) == len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    deep: Any = []
    for _ in range(100_000):  # deeper than any recursion limit
        deep = [deep]
    assert json_size(deep) == 2 * 100_001


def test_long_conversation_stays_under_the_bound_and_reports_evictions() -> None:
    core = connected(ClientCore(max_restore_bytes=BOUND))
    notices: list[SessionMemoryLimit] = []
    streamed = 0
    for n in range(400):
        for frame in turn(n):
            streamed += len(frame)
            results = core.receive(frame)
            assert not isinstance(results[0], ProtocolError)
            notices += [r for r in results[1:] if isinstance(r, SessionMemoryLimit)]
        assert core.restore_size <= BOUND
        assert measured(core) <= BOUND
    assert streamed > 20 * BOUND
    # evicted oldest first: the newest turns are all still there, the first ones are gone
    ids = core.mirror.ids
    assert ids[-2:] == ["item_u399", "item_a399"] and "item_u0" not in ids
    assert core.mirror.text("item_u399") is not None
    assert notices and all(n.code == "session_memory_limit" and n.local for n in notices)
    evicted = sum(n.detail["evicted_items"] for n in notices)
    assert evicted == core.counters.evicted_items == 800 - len(ids)
    assert sum(n.detail["evicted_bytes"] for n in notices) == core.counters.evicted_bytes
    assert notices[-1].detail["max_bytes"] == BOUND and notices[-1].detail["size"] <= BOUND
    # a reconnect replays what is kept, from the oldest kept item as "root"
    core.connection_lost()
    core.connection_started()
    core.receive(SESSION_CREATED)
    replay = [e for e in core.outgoing() if e["type"] == "conversation.item.create"]
    assert replay[0]["previous_item_id"] == "root"
    assert [e["item"]["id"] for e in replay] == ids


def test_memory_stays_flat_over_a_long_stream() -> None:
    core = connected(ClientCore(max_restore_bytes=BOUND))
    frames = [f for n in range(1500) for f in turn(n)]  # made before measuring
    tracemalloc.start()
    try:
        for frame in frames[: 8 * 300]:
            core.receive(frame)
        warm = tracemalloc.get_traced_memory()[0]
        for frame in frames[8 * 300:]:
            core.receive(frame)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # 1200 more turns (~1.4 MB of frames) add no more than a bound's worth of memory
    assert after - warm < BOUND, (warm, after)


def test_unacknowledged_creates_are_evicted_oldest_first() -> None:
    core = connected(ClientCore(max_restore_bytes=BOUND))
    text = "x" * 500
    for n in range(400):  # the server never acknowledges
        core.submit({"type": "conversation.item.create", "item": {
            "id": f"mine_{n}", "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}})
        core.outgoing()
        assert core.restore_size <= BOUND
    pending = [e["item"]["id"] for e in core.pending]
    assert pending[-1] == "mine_399" and "mine_0" not in pending
    assert core.counters.evicted_pending == 400 - len(pending)
    results = core.receive(J({"type": "input_audio_buffer.cleared"}))
    assert isinstance(results[1], SessionMemoryLimit)
    assert results[1].detail["evicted_pending"] == core.counters.evicted_pending
    # the evicted ones are not re-sent on the next connection, the kept ones are
    core.connection_lost()
    core.connection_started()
    core.receive(SESSION_CREATED)
    resent = [e["item"]["id"] for e in core.outgoing() if e["type"] == "conversation.item.create"]
    assert resent == pending


def test_hostile_server_bookkeeping_is_bounded() -> None:
    """Transcripts for unknown items, responses never done, out-of-band responses never
    done, and endless output items of one response all count and are evicted."""
    core = connected(ClientCore(max_restore_bytes=BOUND))
    for n in range(3000):
        for event in (
            {"type": "conversation.item.input_audio_transcription.completed",
             "item_id": f"ghost_{n}", "content_index": n % 3, "transcript": "t" * 50},
            {"type": "response.created", "response": {"id": f"r_{n}"}},
            {"type": "response.created", "response": {"id": f"oob_{n}", "conversation_id": None}},
            {"type": "response.output_item.added", "response_id": f"r_{n}", "output_index": 0,
             "item": {"id": f"o_{n}", "type": "message"}},
        ):
            core.receive(J(event))
        assert core.restore_size <= BOUND
    big = "y" * (2 * BOUND)  # a single item larger than the whole bound
    core.receive(J({"type": "conversation.item.added", "item": {"id": "huge", "type": "message",
                                                                "content": [{"type": "input_text", "text": big}]}}))
    assert core.restore_size <= BOUND and core.mirror.item("huge") is None


def test_deletes_count_and_eviction_applies_them() -> None:
    core = connected(ClientCore(max_restore_bytes=4096))
    for n in range(20):
        core.receive(turn(n, words=2)[0])
    kept = core.mirror.ids
    for item_id in kept:
        core.submit({"type": "conversation.item.delete", "item_id": item_id})
    core.outgoing()
    assert core.restore_size <= 4096


async def test_the_session_is_told_with_an_event() -> None:
    published = []
    link = SessionLink("s1", Transport.WEBSOCKET, ClientCore(max_restore_bytes=BOUND), published.append)
    state = InboundState()
    link.core.connection_started()
    handle_incoming(link, state, SESSION_CREATED)
    for n in range(200):
        for frame in turn(n):
            handle_incoming(link, state, frame)
    await trio.lowlevel.checkpoint()
    assert not [e for e in published if e.kind is EventKind.PROTOCOL_ERROR]  # a limit, not bad input
    limits = [e for e in published if e.kind is EventKind.DROPPED]
    assert limits, "no limit event"
    assert all(e.payload["reason"] == "session_memory_limit" and e.payload["category"] == "restore"
               for e in limits)
    detail = limits[0].payload
    assert detail["limit"] == "max_restore_bytes" and detail["max_bytes"] == BOUND
    assert detail["count"] == detail["evicted_items"] + detail["evicted_pending"]
    assert detail["evicted_items"] > 0 and detail["size"] <= BOUND
    assert decode_event(encode_event(limits[0])) == limits[0]  # msgpack round trip
    servers = [e for e in published if e.kind is EventKind.SERVER]
    assert len(servers) == 1 + 200 * 8  # every server event still published, in order
