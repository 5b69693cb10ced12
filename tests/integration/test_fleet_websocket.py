"""The fleet against the embedded server over real loopback WebSockets."""

import pytest
import trio

from actors.events import TRANSITIONS, ConnectionState, EventKind
from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer, FaultPlan

S = ConnectionState

TEXT_TURN = [
    "response.created", "response.output_item.added", "conversation.item.added",
    "response.content_part.added", "response.output_text.delta", "response.output_text.done",
    "response.content_part.done", "response.output_item.done", "conversation.item.done",
    "response.done",
]


def _collapse(types):
    """Runs of the same delta type collapse to one, so orders compare independent of chunking."""
    out = []
    for t in types:
        if t.endswith(".delta") and out and out[-1] == t:
            continue
        out.append(t)
    return out


def _record_for(server, fleet, sid):
    session_id = fleet.links[sid].core.session_id
    matches = [r for r in server.connections if r.session and r.session.session["id"] == session_id]
    assert len(matches) == 1
    return matches[0]


async def _collect_until(sub, sid_done: set, want: int, stop_type="response.done"):
    events = []
    with trio.fail_after(60):
        async for e in sub:
            events.append(e)
            if e.type == stop_type and e.kind is EventKind.SERVER:
                sid_done.add(e.session_id)
                if len(sid_done) == want:
                    return events
    return events


async def test_fifty_sessions_complete_text_and_audio_turns_in_protocol_order(audio_turn):
    n = 50
    async with open_fleet(seed=1, config={"output_modalities": ["audio"]}) as fleet:
        sub = fleet.subscribe(kinds=["server", "protocol_error", "dropped"], buffer=200_000)
        sids = [await fleet.add_session() for _ in range(n)]
        for sid in sids:
            await fleet.wait_connected(sid)
        for sid in sids:
            await fleet.send(sid, user_text(f"hello from {sid}"))
            await fleet.send(sid, {"type": "response.create", "response": {"output_modalities": ["text"]}})
        text_events = await _collect_until(sub, set(), n)
        for sid in sids:
            for event in audio_turn():
                await fleet.send(sid, event)
        audio_events = await _collect_until(sub, set(), n)
        assert sub.dropped == 0
        assert not [e for e in text_events + audio_events if e.kind is not EventKind.SERVER]
        for sid in sids:
            text = _collapse([e.type for e in text_events if e.session_id == sid])
            text = text[: text.index("response.done") + 1]
            assert text[-len(TEXT_TURN):] == TEXT_TURN, text
            audio = [e.type for e in audio_events if e.session_id == sid]
            vad = [t for t in audio if t.startswith("input_audio_buffer.")]
            assert vad == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                           "input_audio_buffer.committed"]
            assert "response.output_audio.delta" in audio and "response.output_audio_transcript.delta" in audio
            audio = audio[: audio.index("response.done") + 1]
            tail = [t for t in audio[audio.index("response.created"):] if not t.endswith(".delta")]
            assert tail[-3:] == ["response.output_item.done", "conversation.item.done", "response.done"]
            assert audio.index("response.output_audio.done") < audio.index("response.done")
        seqs = {}
        for e in text_events + audio_events:
            seqs.setdefault(e.session_id, []).append(e.seq)
        for sid, numbers in seqs.items():
            assert numbers == sorted(numbers)
        statuses = fleet.statuses()
        assert all(s.state is S.CONNECTED and s.reconnects == 0 for s in statuses.values())


async def test_drop_mid_turn_every_session_reconnects_and_the_conversation_is_restored():
    n = 8
    server = EmbeddedServer(api_keys={"sk-local-test"})
    async with open_fleet(server=server, api_key="sk-local-test", seed=2,
                          config={"output_modalities": ["text"]}) as fleet:
        states = fleet.subscribe(kinds=["state"], buffer=10_000)
        sids = [await fleet.add_session() for _ in range(n)]
        for sid in sids:
            await fleet.wait_connected(sid)
        # Turn 1 completes on the first connection.
        done = fleet.subscribe(types=["response.done"], buffer=10_000)
        for sid in sids:
            await fleet.send(sid, user_text(f"first {sid}", item_id=f"item_first_{sid}"))
            await fleet.send(sid, {"type": "response.create"})
        await _collect_until(done, set(), n)
        # Every connection is dropped a few events into the next turn.
        server.faults = FaultPlan(drop_after_events=3, drop_mode="abort")
        for sid in sids:
            await fleet.send(sid, user_text(f"second {sid}", item_id=f"item_second_{sid}"))
            await fleet.send(sid, {"type": "response.create"})
        # Wait for every session to have reconnected, then lift the fault.
        with trio.fail_after(30):
            while any(fleet.status(s).reconnects == 0 for s in sids):
                await states.receive()
        server.faults = FaultPlan()
        with trio.fail_after(30):
            for sid in sids:
                while fleet.status(sid).state is not S.CONNECTED:
                    await states.receive()
        # The second turn is answered on the restored conversation.
        await _collect_until(done, set(), n)
        for sid in sids:
            record = _record_for(server, fleet, sid)
            ids = [item["id"] for item in record.items if item.get("role") == "user"]
            assert ids.count(f"item_first_{sid}") == 1, "replayed history holds turn 1 once"
            assert ids.count(f"item_second_{sid}") == 1, "turn 2 delivered exactly once"
            assert ids.index(f"item_first_{sid}") < ids.index(f"item_second_{sid}")
            assert any(i.get("role") == "assistant" for i in record.items)
            assert fleet.status(sid).reconnects >= 1
    transitions = []
    while True:
        try:
            e = states.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            break
        transitions.append(e.payload)
    for t in transitions:
        if t["from"] is not None:
            assert S(t["to"]) in TRANSITIONS[S(t["from"])]


async def test_expired_client_secret_is_refreshed_and_connect_succeeds():
    now = [1_800_000_000.0]
    server = EmbeddedServer(api_keys={"sk-local-test"}, clock=lambda: now[0])
    async with open_fleet(server=server, api_key="sk-local-test", key_ttl=60) as fleet:
        fleet.keys.clock = lambda: now[0]
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        first = fleet.keys.current
        now[0] += 3600  # the secret is long expired; the server would refuse it
        server.faults = FaultPlan(drop_after_events=1, drop_mode="close", drop_close_code=1012)
        await fleet.send(sid, user_text("hi"))
        with trio.fail_after(10):
            while fleet.status(sid).reconnects == 0:
                await fleet.wait_state(sid, S.RECONNECTING)
                server.faults = FaultPlan()
                await fleet.wait_state(sid, S.CONNECTED, S.ERROR)
        assert fleet.status(sid).state is S.CONNECTED
        assert fleet.keys.current is not first and fleet.keys.mints >= 2
        assert server.stats.auth_failures == 0


async def test_permanent_auth_rejection_ends_in_error_and_others_are_unaffected():
    server = EmbeddedServer(api_keys={"sk-local-test"})
    async with open_fleet(server=server, api_key="sk-local-test", key_mode="direct") as fleet:
        good = await fleet.add_session()
        await fleet.wait_connected(good)
        bad = await fleet.add_session(extra_headers=())  # same key, but we revoke it below
        await fleet.wait_connected(bad)
        server.faults = FaultPlan(reject_keys=True, drop_after_events=1, drop_mode="close",
                                  drop_close_code=1012)
        await fleet.send(bad, user_text("this drop makes it reconnect into a rejected key"))
        state = await fleet.wait_state(bad, S.ERROR)
        assert state is S.ERROR
        status = fleet.status(bad)
        assert "authentication rejected" in status.last_error
        assert status.finished
        server.faults = FaultPlan()
        assert fleet.status(good).state is S.CONNECTED
        done = fleet.subscribe(sessions=[good], types=["response.done"])
        await fleet.send(good, user_text("still here"))
        await fleet.send(good, {"type": "response.create"})
        with trio.fail_after(10):
            await done.receive()


@pytest.mark.parametrize("kind,code", [("invalid_json", "malformed_json"), ("unknown_type", "unknown_event_type"),
                                       ("binary", "binary_frame"), ("oversized", "oversized_frame")])
async def test_malformed_server_frames_become_error_events_and_the_session_survives(kind, code):
    server = EmbeddedServer(api_keys={"sk-local-test"},
                            faults=FaultPlan(malformed_every=2, malformed_kinds=(kind,), oversized_bytes=70_000))
    async with open_fleet(server=server, api_key="sk-local-test",
                          config={"output_modalities": ["text"]}) as fleet:
        sid = await fleet.add_session(max_frame=65_536) if False else await fleet.add_session()
        fleet.links[sid].core.max_frame = 65_536
        errors = fleet.subscribe(sessions=[sid], kinds=["protocol_error"])
        done = fleet.subscribe(sessions=[sid], types=["response.done"])
        await fleet.wait_connected(sid)
        await fleet.send(sid, user_text("hello"))
        await fleet.send(sid, {"type": "response.create"})
        with trio.fail_after(10):
            await done.receive()
            first = await errors.receive()
        assert first.payload["code"] == code
        status = fleet.status(sid)
        assert status.state is S.CONNECTED and status.reconnects == 0


async def test_session_is_recycled_before_the_server_deadline_and_keeps_its_conversation():
    from standin import ModelConfig

    server = EmbeddedServer(api_keys={"sk-local-test"}, model_config=ModelConfig(max_session_s=3.0))
    async with open_fleet(server=server, api_key="sk-local-test",
                          config={"output_modalities": ["text"]},
                          connect_params={"recycle_margin": 2.6}) as fleet:
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        await fleet.send(sid, user_text("remember me", item_id="item_keep"))
        states = fleet.subscribe(sessions=[sid], kinds=["state"])
        added = fleet.subscribe(sessions=[sid], types=["conversation.item.added"])
        with trio.fail_after(10):
            await added.receive()  # on the first connection
            first = await states.receive()
            second = await states.receive()
            replayed = await added.receive()  # the restore on the second connection
        assert replayed.payload["item"]["id"] == "item_keep"
        assert (first.payload["to"], second.payload["to"]) == ("reconnecting", "connected")
        assert "recycle" in first.payload["reason"]
        status = fleet.status(sid)
        assert status.recycles >= 1 and status.restarts == 0
        record = _record_for(server, fleet, sid)
        assert record.index >= 2 and [i["id"] for i in record.items][:1] == ["item_keep"]
