"""A Live answer's end is found by its output going quiet (``actors/inbound.py``): a client that
stalls (a loaded box, a long GC: here the trio MockClock jumps at real speed) must not take
the stall for quiet and report a partial answer as ``completed``, on a first connection or on
the new session that restores a dropped one. Over loopback, against the embedded server."""

from __future__ import annotations

import trio
import trio.testing

from actors.events import ConnectionState, EventKind
from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer, ModelConfig


async def test_a_stall_after_the_first_word_does_not_end_the_answer(mock_clock):
    """Turn 0: the process stalls for twice the answer gap right after the first transcript
    delta. Turn 1: the connection is dropped right after the first transcript delta, and the
    restored session's answer is stalled the same way. Each turn gets one ``response.done``,
    completed, with the whole answer (before the fix: ``"You "``, the first word only)."""
    mock_clock.rate = 1.0
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=1.0, chunk_ms=50))
    async with open_fleet(server=server, api_key=server.api_key, seed=1) as fleet:
        sid = await fleet.add_session(protocol="live")
        await fleet.wait_connected(sid)
        link = fleet.links[sid]
        gap = link.core.edge.answer_gap
        async with fleet.subscribe(sessions=[sid], kinds=["server", "dropped"],
                                   buffer=10_000) as events:
            for turn, drop in enumerate((False, True)):
                await fleet.send(sid, user_text(f"{sid} turn {turn}"))
                await fleet.send(sid, {"type": "response.create"})
                done = []
                with trio.fail_after(10):
                    async for event in events:
                        assert event.kind is not EventKind.DROPPED, event.payload
                        kind = event.payload["type"]
                        if kind == "response.output_audio_transcript.delta" and drop:
                            assert link.state is ConnectionState.CONNECTED
                            drop = False
                            link.abort_connection()
                        elif kind == "response.output_audio_transcript.delta" and not done:
                            done.append(None)  # the first word of the (restored) answer
                            await trio.testing.wait_all_tasks_blocked()  # the quiet timer waits
                            mock_clock.jump(2 * gap)  # … and the process does not run
                        if kind == "response.done":
                            response = event.payload["response"]
                            assert response["status"] == "completed"
                            assert response["output"][0]["content"][0]["transcript"] == (
                                f"You said: {sid} turn {turn}")
                            break
            assert link.core.connections == 2
            # no second answer follows: the rest of the first one did not open a new one
            await fleet.send(sid, user_text(f"{sid} turn 2"))
            await fleet.send(sid, {"type": "response.create"})
            with trio.fail_after(10):
                async for event in events:
                    if event.payload["type"] == "response.done":
                        assert event.payload["response"]["output"][0]["content"][0][
                            "transcript"] == f"You said: {sid} turn 2"
                        break
