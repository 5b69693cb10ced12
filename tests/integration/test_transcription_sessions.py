"""Transcription sessions through the fleet (issue 12 item 3): ``add_session(config={"type":
"transcription", …})`` connects with ``?intent=transcription``, and no utterance is lost at a
drop: one caught while it is spoken, or committed but not yet transcribed, is replayed from its
audio on the next connection and transcribed there, once. The restore sends the session's
transcription config, and no conversation (a transcription session has none to go on with).

Twelve sessions speak four utterances each over real loopback WebSockets to the embedded server,
whose transcripts come 300 ms after the commit; each utterance is cut by a drop at a point
chosen by the events (speech started, committed, first transcript delta) or not at all."""

from __future__ import annotations

import trio

from actors.events import ConnectionState, EventKind
from actors.proto.session import SessionConfig
from orchestrator.fleet import FleetError, open_fleet
from standin import EmbeddedServer, ModelConfig

SESSIONS = 12
UTTERANCES = 4
COMPLETED = "conversation.item.input_audio_transcription.completed"
DROP_AFTER = [None, "input_audio_buffer.speech_started", "input_audio_buffer.committed",
              "conversation.item.input_audio_transcription.delta"]
CONFIG = {"type": "transcription", "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe",
                                                                         "language": "en"}}}}


async def test_utterances_cut_by_drops_are_transcribed_once(audio_turn):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(transcription_delay_s=0.3))
    transcripts: dict[str, list[str]] = {}
    drops: dict[str, int] = {}
    async with open_fleet(server=server, api_key=server.api_key, seed=7) as fleet:
        sids = [await fleet.add_session(config=CONFIG) for _ in range(SESSIONS)]
        for sid in sids:
            await fleet.wait_connected(sid)

        async def speak(index: int, sid: str) -> None:
            transcripts[sid], drops[sid] = [], 0
            link = fleet.links[sid]
            async with fleet.subscribe(sessions=[sid], kinds=["server", "dropped"],
                                       buffer=100_000) as events:
                for turn in range(UTTERANCES):
                    drop_after = DROP_AFTER[(index + turn) % len(DROP_AFTER)]
                    for append in audio_turn(tone_ms=300 + 250 * turn, silence_ms=700):
                        await fleet.send(sid, append)
                    with trio.fail_after(30):  # generous: a lost utterance would never come
                        async for event in events:
                            assert event.kind is not EventKind.DROPPED, event.payload
                            kind = event.payload["type"]
                            assert not kind.startswith("response."), kind
                            if kind == drop_after and link.state is ConnectionState.CONNECTED:
                                drop_after = None
                                drops[sid] += 1
                                link.abort_connection()
                            if kind == COMPLETED:
                                transcripts[sid].append(event.payload["transcript"])
                                break
                with trio.fail_after(30):
                    while not link.core.settled:
                        await events.receive()

        async with trio.open_nursery() as nursery:
            for index, sid in enumerate(sids):
                nursery.start_soon(speak, index, sid)

        replayed = sum(fleet.links[sid].core.counters.replayed_turns for sid in sids)
        lost = sum(fleet.links[sid].core.counters.lost_turns for sid in sids)
        for sid in sids:  # the final connections, before the fleet closes them
            session_id = fleet.links[sid].core.session_id
            [record] = [r for r in server.connections
                        if r.session and r.session.session["id"] == session_id]
            session = record.session
            assert session.transcribing and not session.responses
            # the restore sent the transcription config and no conversation
            kinds = [e["type"] for e in session.received]
            assert "conversation.item.create" not in kinds and "response.create" not in kinds
            updates = [e["session"] for e in session.received if e["type"] == "session.update"]
            assert updates and all(u["type"] == "transcription" for u in updates)
            assert session.session["audio"]["input"]["transcription"]["language"] == "en"
    for sid in sids:
        assert len(transcripts[sid]) == UTTERANCES, transcripts[sid]
        # each utterance is heard whole, once and in order: its tone (300 + 250 n ms), the
        # silence before it within the VAD's 300 ms prefix padding (200 ms; up to 300 when a
        # replay carries the previous utterance's tail) and the VAD's 500 ms after it. (Each
        # is under 2 s in all: sent faster than real time, a longer one would be trimmed to
        # its newest 2 s before the server says its speech started, see actors/proto/turns.py)
        for n, text in enumerate(transcripts[sid]):
            heard = int(text.split()[2]) - (300 + 250 * n)
            assert 680 <= heard <= 820, (sid, n, text)
    assert sum(drops.values()) >= SESSIONS * UTTERANCES * 3 // 4 * 9 // 10
    assert lost == 0 and replayed >= sum(drops.values()) // 2, (replayed, drops)


async def test_a_transcription_session_is_websocket_realtime_and_keeps_its_type():
    server = EmbeddedServer.with_generated_key()
    async with open_fleet(server=server, api_key=server.api_key) as fleet:
        for kwargs in ({"protocol": "live"}, {"call_id": "rtc_x"}):
            try:
                await fleet.add_session(config=CONFIG, **kwargs)
            except FleetError as exc:
                assert "transcription" in str(exc)
            else:
                raise AssertionError(f"{kwargs} accepted")
        sid = await fleet.add_session(config=SessionConfig(type="transcription"))
        await fleet.wait_connected(sid)
        record = next(r for r in server.connections if r.session is not None)
        assert record.session.transcribing
        try:
            await fleet.send(sid, {"type": "session.update", "session": {"type": "realtime"}})
        except ValueError as exc:
            assert "cannot change" in str(exc)
        else:
            raise AssertionError("a transcription session became a realtime one")
