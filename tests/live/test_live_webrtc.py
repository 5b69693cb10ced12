"""GPT-Live over WebRTC (issue 11): ``POST /v1/live/sessions`` with the SDP offer and the session
(no ``session.start`` on the data channel), audio up and down the media track, a drop in the
middle of a turn: a new session is created, seeded with the conversation, and the turn is
answered once."""

from __future__ import annotations

import pytest
import trio

pytest.importorskip("aiortc", reason="needs the webrtc extra: pip install -e .[webrtc]")

from actors.events import ConnectionState, EventKind
from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer

KEY = "sk-local-live-webrtc"


async def test_live_over_webrtc_turns_and_a_drop_mid_answer(audio_turn):
    server = EmbeddedServer(api_keys={KEY})
    async with open_fleet(server=server, api_key=KEY, webrtc=True, seed=4) as fleet:
        sid = await fleet.add_session(transport="webrtc", protocol="live")
        with trio.fail_after(30):
            await fleet.wait_connected(sid)
        link = fleet.links[sid]
        assert await fleet.ask(sid, "hello over webrtc", timeout=20) == "You said: hello over webrtc"
        async with fleet.subscribe(sessions=[sid], kinds=["server", "audio"], buffer=100_000) as events:
            for append in audio_turn(tone_ms=600, silence_ms=700):
                await fleet.send(sid, append)
            heard = loud = 0
            with trio.fail_after(30):
                async for event in events:
                    if event.kind is EventKind.AUDIO:
                        loud += 1
                    elif event.payload["type"] == "conversation.item.input_audio_transcription.completed":
                        heard += 1
                    elif event.payload["type"] == "response.done":
                        break
            assert heard == 1 and loud > 0  # audio went up the track, the answer came down it
            # a drop while the next answer streams: a new Live session, seeded, answers once
            await fleet.send(sid, user_text("cut me off"))
            await fleet.send(sid, {"type": "response.create"})
            with trio.fail_after(30):
                async for event in events:
                    if event.kind is EventKind.SERVER and event.payload["type"] == "response.created":
                        link.abort_connection()
                        break
                done = []
                async for event in events:
                    if event.kind is EventKind.SERVER and event.payload["type"] == "response.done":
                        done.append(event.payload["response"])
                        if done[-1]["status"] == "completed":
                            break
        assert done[-1]["output"][0]["content"][0]["transcript"] == "You said: cut me off"
        assert fleet.status(sid).state is ConnectionState.CONNECTED and link.core.connections == 2
        sessions = [r.session for r in server.connections if r.transport == "webrtc"]
        assert len(sessions) == 2
        seeded = [(i["role"], i["content"][0]["text"]) for i in sessions[-1].items]
        assert seeded[0] == ("user", "hello over webrtc")
        assert [text for role, text in seeded if role == "user"] == [
            "hello over webrtc", seeded[2][1], "cut me off"]  # the audio turn as its transcript
