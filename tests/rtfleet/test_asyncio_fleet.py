"""The fleet driven from asyncio (``rtfleet.asyncio``) next to the official SDK's asyncio client.

These are plain sync tests that call ``asyncio.run``: pytest-trio's trio_mode would run an
``async def`` test under trio.
"""

import asyncio

import openai
import pytest

import rtfleet
import rtfleet.asyncio
from rtfleet import ConnectionEvent, ConnectionState, EventKind, FleetError, user_text

TEXT_TURN_END = ["response.output_text.done", "response.content_part.done",
                 "response.output_item.done", "conversation.item.done", "response.done"]


async def _sdk_answer(ws_base: str, key: str, text: str) -> str:
    client = openai.AsyncOpenAI(api_key=key, websocket_base_url=f"{ws_base}/v1")
    try:
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
            await conn.conversation.item.create(item={
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
            await conn.response.create()
            async for event in conn:
                if event.type == "response.output_text.done":
                    return event.text
    finally:
        await client.close()
    raise AssertionError("the SDK connection ended without an answer")


@pytest.mark.parametrize("mode", ["thread", "guest"])
def test_a_fleet_under_asyncio_run_and_the_openai_sdk_both_get_answers_from_one_server(mode):
    key = "sk-local-asyncio"

    async def main():
        async with rtfleet.asyncio.open_fleet(mode=mode, api_key=key,
                                              config={"output_modalities": ["text"]}) as fleet:
            sids = [await fleet.add_session() for _ in range(3)]
            for sid in sids:
                await fleet.wait_connected(sid)
            ws_base = "ws" + fleet.url[len("http"):]
            async with fleet.subscribe(sessions=[sids[0]], kinds=["server"]) as events:
                answers = await asyncio.gather(
                    *(fleet.ask(sid, f"question from {sid}") for sid in sids),
                    _sdk_answer(ws_base, key, "question from the sdk"),
                )
                seen = []
                async for event in events:
                    seen.append(event)
                    if event.type == "response.done":
                        break
            statuses = await fleet.statuses()
        return sids, answers, seen, statuses

    sids, answers, seen, statuses = asyncio.run(main())
    for sid, answer in zip(sids, answers):
        assert f"question from {sid}" in answer
    assert "question from the sdk" in answers[-1]
    # the same events as under trio, in protocol order
    assert all(isinstance(e, ConnectionEvent) and e.kind is EventKind.SERVER for e in seen)
    types = [e.type for e in seen]
    assert types.index("conversation.item.added") < types.index("response.created")
    assert [t for t in types if not t.endswith(".delta")][-len(TEXT_TURN_END):] == TEXT_TURN_END
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert {s.state for s in statuses.values()} == {ConnectionState.CONNECTED}


def test_cancelling_an_asyncio_call_cancels_it_in_the_fleet_and_the_fleet_goes_on():
    async def main():
        async with rtfleet.asyncio.open_fleet(config={"output_modalities": ["text"]}) as fleet:
            sid = await fleet.add_session()
            await fleet.wait_connected(sid)
            waiting = asyncio.ensure_future(fleet.wait_state(sid, "reconnecting"))
            await asyncio.sleep(0)  # let the call reach the fleet
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            return await fleet.ask(sid, "still answering")

    assert "still answering" in asyncio.run(main())


def test_subscriptions_end_when_the_fleet_closes_and_calls_after_close_are_fleet_errors():
    async def main():
        async with rtfleet.asyncio.open_fleet() as fleet:
            sub = fleet.subscribe(kinds=["state"])
            sid = await fleet.add_session()
            await fleet.wait_connected(sid)
        states = [e.payload["to"] async for e in sub]
        with pytest.raises(FleetError, match="closed"):
            await fleet.add_session()
        return states

    states = asyncio.run(main())
    assert states == ["connecting", "connected", "closed"]


def test_the_trio_open_fleet_under_asyncio_says_to_use_the_asyncio_entry():
    async def main():
        async with rtfleet.open_fleet():
            pass

    with pytest.raises(FleetError, match=r"rtfleet\.asyncio\.open_fleet"):
        asyncio.run(main())


def test_guest_mode_refuses_webrtc_because_trio_asyncio_cannot_share_the_loop_thread():
    async def main():
        async with rtfleet.asyncio.open_fleet(mode="guest", webrtc=True):
            pass

    with pytest.raises(FleetError, match="mode='thread'"):
        asyncio.run(main())


def test_the_public_api_is_importable_from_rtfleet():
    from rtfleet import open_fleet, user_text as ut

    assert open_fleet is rtfleet.open_fleet and ut is user_text
    assert user_text("hi")["item"]["content"][0]["text"] == "hi"
    assert "asyncio" not in rtfleet.__all__  # a star import must not shadow the stdlib
    assert set(rtfleet.__all__) <= set(dir(rtfleet))


def test_audio_streams_from_asyncio_through_the_fleets_audio_clock():
    async def main():
        async with rtfleet.asyncio.open_fleet(config={"output_modalities": ["text"]}) as fleet:
            sid = await fleet.add_session()
            await fleet.wait_connected(sid)
            dues = []
            sent = await fleet.stream_audio(sid, b"\x00\x00" * 480 * 10,
                                            on_frame=lambda due, at: dues.append(due))
            return sent, dues

    sent, dues = asyncio.run(main())
    assert sent == 10 and len(dues) == 10
    assert all(abs(b - a - 0.02) < 1e-9 for a, b in zip(dues, dues[1:]))


def test_an_asyncio_embedder_freezes_the_heap_and_the_fleets_close_thaws_it():
    import gc

    async def main():
        async with rtfleet.asyncio.open_fleet(config={"output_modalities": ["text"]}) as fleet:
            sid = await fleet.add_session()
            await fleet.wait_connected(sid)
            frozen = await fleet.freeze_heap()
            # (frozen objects the other thread lets go of since are freed as usual)
            assert frozen > 1000 and gc.get_freeze_count() > frozen // 2
            return await fleet.ask(sid, "still answering?")

    assert gc.get_freeze_count() == 0
    assert asyncio.run(main())
    assert gc.get_freeze_count() == 0
