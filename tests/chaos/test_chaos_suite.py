"""The chaos suite: many faults at once against a fleet, then the invariants.

Faults (seeded): random abortive drops, the server killed and restarted, the key service
refusing for a while, latency spikes, malformed frames. Invariants: every session ends
connected or in an explained error state; every submitted item is in the final conversation
exactly once and in order (nothing lost, nothing duplicated); every event sequence is gapless;
restart intensity holds; the trio task count returns to its baseline.
"""

import random

import attrs
import trio

from actors.events import TRANSITIONS, ConnectionState, EventKind
from orchestrator.fleet import FleetError, open_fleet, user_text
from orchestrator.policy import Backoff
from orchestrator.scenario.chaos import ServerControl
from orchestrator.server import EmbeddedServer, FaultPlan

S = ConnectionState
SESSIONS = 12
TURNS = 6


def _task_count():
    root = trio.lowlevel.current_root_task()
    count, stack = 0, [root]
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


async def test_fleet_survives_combined_chaos_and_keeps_every_invariant():
    rng = random.Random(20261124)
    baseline = _task_count()
    server = EmbeddedServer(api_keys={"sk-chaos"}, faults=FaultPlan(seed=5))
    async with trio.open_nursery() as root:
        control = ServerControl(server, root)
        url = await control.start()
        async with open_fleet(url, api_key="sk-chaos", seed=3, backoff=Backoff(base=0.05, cap=0.5),
                              max_restarts=50, restart_window=60, max_sessions=SESSIONS,
                              config={"output_modalities": ["text"]}) as fleet:
            stream = fleet.subscribe(buffer=1_000_000)
            sids = [await fleet.add_session() for _ in range(SESSIONS)]
            try:
                await fleet.add_session()
                raise AssertionError("max_sessions not enforced")
            except FleetError as exc:
                assert "max_sessions" in str(exc)
            for sid in sids:
                await fleet.wait_connected(sid)

            async def chaos():
                await trio.sleep(0.3)
                for sid in rng.sample(sids, SESSIONS // 2):
                    fleet.links[sid].abort_connection()
                await trio.sleep(0.3)
                server.faults = attrs.evolve(server.faults, latency_ms=80)
                await trio.sleep(0.3)
                server.faults = attrs.evolve(server.faults, latency_ms=0, malformed_every=7)
                await trio.sleep(0.3)
                control.kill()
                await trio.sleep(0.4)
                server.faults = attrs.evolve(server.faults, reject_keys=True, malformed_every=None)
                fleet.keys.invalidate()
                await control.restart()
                await trio.sleep(0.5)
                server.faults = attrs.evolve(server.faults, reject_keys=False)
                for sid in rng.sample(sids, SESSIONS // 3):
                    fleet.links[sid].abort_connection()

            async def conversation(sid):
                done = fleet.subscribe(sessions=[sid], types=["response.done"], buffer=1000)
                for turn in range(TURNS):
                    await fleet.send(sid, user_text(f"{sid} turn {turn}", item_id=f"item_{sid}_{turn}"))
                    await fleet.send(sid, {"type": "response.create"})
                    with trio.fail_after(30):
                        while True:
                            event = await done.receive()
                            if event.payload["response"]["status"] == "completed":
                                break
                    await trio.sleep(rng.uniform(0.05, 0.3))

            with trio.fail_after(90):
                async with trio.open_nursery() as work:
                    work.start_soon(chaos)
                    for sid in sids:
                        work.start_soon(conversation, sid)
                for sid in sids:
                    await fleet.wait_connected(sid)

            for sid in sids:
                status = fleet.status(sid)
                assert status.state is S.CONNECTED or (status.state is S.ERROR and status.last_error)
                assert status.restarts <= 50
                record = _final_record(server, fleet, sid)
                user_items = [i["id"] for i in record.items if i.get("role") == "user"]
                assert user_items == [f"item_{sid}_{t}" for t in range(TURNS)], (sid, user_items)
            assert sum(fleet.status(s).reconnects for s in sids) >= SESSIONS
            assert server.stats.faults.keys_rejected > 0 and control.restarts == 1
        root.cancel_scope.cancel()

    events = []
    while True:
        try:
            events.append(stream.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    assert stream.dropped == 0
    by_session = {}
    for event in events:
        by_session.setdefault(event.session_id, []).append(event)
    for sid, evs in by_session.items():
        seqs = [e.seq for e in evs]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{sid}: a gap in the event sequence"
        for e in evs:
            if e.kind is EventKind.STATE and e.payload["from"] is not None:
                assert S(e.payload["to"]) in TRANSITIONS[S(e.payload["from"])]
    assert any(e.kind is EventKind.PROTOCOL_ERROR for e in events), "malformed frames were reported"
    assert _task_count() <= baseline + 2, "tasks left behind after the fleet closed"


def _final_record(server, fleet, sid):
    session_id = fleet.links[sid].core.session_id
    matches = [r for r in server.connections if r.session and r.session.session["id"] == session_id]
    assert len(matches) == 1
    return matches[0]
