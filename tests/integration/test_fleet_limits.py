"""Per-session limits through the fleet API, against the embedded server over loopback."""

import trio

from actors.events import EventKind
from orchestrator.fleet import open_fleet, user_text

BOUND = 2048


async def test_max_restore_bytes_bounds_a_session_and_is_reported_as_dropped_restore():
    async with open_fleet(max_restore_bytes=BOUND, config={"output_modalities": ["text"]}) as fleet:
        dropped = fleet.subscribe(kinds=[EventKind.DROPPED], buffer=1000)
        done = fleet.subscribe(types=["response.done"], buffer=1000)
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        core = fleet.links[sid].core
        assert core.max_restore_bytes == BOUND
        with trio.fail_after(20):
            for turn in range(12):
                await fleet.send(sid, user_text(f"turn {turn}: " + "words " * 40))
                await fleet.send(sid, {"type": "response.create"})
                await done.receive()
                assert core.restore_size <= BOUND
            notice = await dropped.receive()
    assert notice.payload["category"] == "restore" and notice.payload["reason"] == "session_memory_limit"
    assert notice.payload["max_bytes"] == BOUND and notice.payload["count"] >= 1
