"""ask(), wall-clock statuses and removed sessions leaving statuses(), against the embedded server."""

import time

import pytest
import trio

from actors.events import ConnectionState
from orchestrator.fleet import AnswerTimeout, FleetError, open_fleet

S = ConnectionState
TEXT = {"output_modalities": ["text"]}


async def test_ask_returns_each_answer_text_even_with_concurrent_asks_on_one_session():
    async with open_fleet(config=TEXT) as fleet:
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        answers = {}

        async def ask(n):
            answers[n] = await fleet.ask(sid, f"question {n}")

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for n in range(3):
                    nursery.start_soon(ask, n)
    # the stand-in's model answers with what it heard: each ask got its own response
    assert {n: f"question {n}" in a for n, a in answers.items()} == {0: True, 1: True, 2: True}


async def test_ask_returns_the_transcript_of_an_audio_answer():
    async with open_fleet(config={"output_modalities": ["audio"]}) as fleet:
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        with trio.fail_after(20):
            assert "spoken please" in await fleet.ask(sid, "spoken please")


async def test_ask_without_an_answer_in_time_raises_answer_timeout_naming_the_session():
    async with open_fleet(config=TEXT) as fleet:
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        with pytest.raises(AnswerTimeout, match=f"session {sid}: no response.done within 0s") as info:
            await fleet.ask(sid, "too slow", timeout=0)
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, FleetError)


async def test_ask_on_a_session_that_ends_raises_fleet_error():
    async with open_fleet(config=TEXT) as fleet:
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fleet.remove_session, sid)
            with pytest.raises(FleetError, match=rf"session {sid} ended closed before answering \(removed\)"):
                await fleet.ask(sid, "never answered")


async def test_connected_since_is_wall_clock_and_cleared_when_the_session_ends():
    async with open_fleet(config=TEXT) as fleet:
        before = time.time()
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        after = time.time()
        since = fleet.statuses()[sid].connected_since
        assert since is not None and before <= since <= after
        status = await fleet.remove_session(sid)
        assert status.connected_since is None


async def test_removed_sessions_leave_statuses_and_sessions_that_ended_by_themselves_stay():
    async with open_fleet(config=TEXT, policy="temporary") as fleet:
        keep, removed, forgotten = [await fleet.add_session() for _ in range(3)]
        for sid in (keep, removed, forgotten):
            await fleet.wait_connected(sid)
        final = await fleet.remove_session(removed)
        assert final.state is S.CLOSED and final.finished
        await fleet.remove_session(forgotten, forget=True)
        assert list(fleet.statuses()) == [keep]
        assert fleet.status(removed).state is S.CLOSED  # still answers by id
        with pytest.raises(FleetError, match="no session"):
            fleet.status(forgotten)
        again = await fleet.add_session(removed)  # an id reused is listed again
        await fleet.wait_connected(again)
        assert sorted(fleet.statuses()) == sorted([keep, removed])
