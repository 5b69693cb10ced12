"""``fleet.stream_audio``: audio from the process's one audio clock to the embedded server."""

import base64
import math

import pytest
import trio

from orchestrator.fleet import FleetError, open_fleet
from standin.testing import pcm16_silence, pcm16_tone, split_chunks


async def test_many_sessions_stream_a_spoken_turn_at_real_time_and_the_server_hears_each():
    pcm = pcm16_silence(200) + pcm16_tone(600) + pcm16_silence(700)
    expected = math.ceil(len(pcm) / 960)
    async with open_fleet(seed=1, config={"output_modalities": ["text"]}) as fleet:
        sids = [await fleet.add_session() for _ in range(20)]
        for sid in sids:
            await fleet.wait_connected(sid)
        sub = fleet.subscribe(kinds=["server"], types=["input_audio_buffer.committed", "response.done"],
                              buffer=10_000)
        received_before = fleet.server.stats.client_events_received
        frames: dict[str, list[tuple[float, float]]] = {sid: [] for sid in sids}
        started = trio.current_time()
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for sid in sids:
                    nursery.start_soon(lambda sid=sid: fleet.stream_audio(
                        sid, pcm, on_frame=lambda due, sent, sid=sid: frames[sid].append((due, sent))))
            elapsed = trio.current_time() - started
            assert elapsed >= (expected - 1) * 0.02  # real time, not as fast as possible
            done: set[str] = set()
            committed: set[str] = set()
            async for event in sub:
                (committed if event.type == "input_audio_buffer.committed" else done).add(event.session_id)
                if len(done) == len(sids):
                    break
        assert committed == done == set(sids)  # server VAD heard every session's turn
        assert fleet.server.stats.client_events_received - received_before >= expected * len(sids)
        for sid in sids:
            dues = [d for d, _ in frames[sid]]
            assert len(dues) == expected
            assert all(b - a == pytest.approx(0.02) for a, b in zip(dues, dues[1:]))
            assert all(sent >= due for due, sent in frames[sid])
        # phases are spread: the twenty sessions fill the clock's four 5 ms phases
        firsts = [frames[sid][0][0] for sid in sids]
        assert len({round(((t - min(firsts)) % 0.02) / 0.005) % 4 for t in firsts}) == 4


async def test_frames_given_as_bytes_or_base64_text_and_bad_frames_refused():
    async with open_fleet(seed=1, config={"output_modalities": ["text"]}) as fleet:
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        chunks = split_chunks(pcm16_silence(100))
        mixed = [chunks[0], base64.b64encode(chunks[1]).decode(), *chunks[2:]]
        with trio.fail_after(10):
            assert await fleet.stream_audio(sid, mixed) == len(chunks)
            with pytest.raises(FleetError, match="bytes or base64 str"):
                await fleet.stream_audio(sid, [b"\x00" * 960, 42])
            with pytest.raises(FleetError, match="no session"):
                await fleet.stream_audio("nope", b"\x00" * 960)
        # the session is unharmed and answers
        assert await fleet.ask(sid, "still there?")
