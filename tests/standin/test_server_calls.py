"""``POST /v1/realtime/calls`` and friends: the embedded server's WebRTC endpoint, over loopback.

A raw client peer (``actors.rtc.peer.RtcPeer``) makes real offers; httpx posts them. Every
wait is on an event or a channel; ``fail_after`` bounds are safety nets only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import attrs
import httpx
import pytest
import trio

pytest.importorskip("aiortc", reason="needs the webrtc extra: pip install -e .[webrtc]")

from actors.rtc.media import PCM_RATE, tone
from actors.rtc.peer import RtcPeer
from standin import EmbeddedServer, FaultPlan, ModelConfig
from standin.sessions.rtc_route import parse_form_data
from standin.testing import open_client

LOOPBACK = ("127.0.0.1",)
NOW = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer.with_generated_key(clock=Clock(), webrtc=True,
                                               model_config=ModelConfig(pace=0.0))
    await nursery.start(server.serve)
    return server


@attrs.define(eq=False)
class Caller:
    """One client peer against the server (shares the server's trio-asyncio loop)."""

    server: EmbeddedServer
    peer: RtcPeer
    call_id: str | None = None
    events: list[dict[str, Any]] = attrs.field(factory=list)

    @classmethod
    async def offer(cls, server: EmbeddedServer) -> tuple[Caller, str]:
        peer = RtcPeer(server.rtc.loop, host_addresses=LOOPBACK)
        return cls(server, peer), await peer.create_offer()

    async def connect(self, response: httpx.Response) -> None:
        assert response.status_code == 201, response.text
        self.call_id = response.headers["location"].rsplit("/", 1)[-1]
        await self.peer.accept_answer(response.text)
        await self.peer.wait_open()

    async def send(self, event: dict[str, Any]) -> None:
        await self.peer.send_texts([json.dumps(event)])

    async def until(self, kind: str) -> list[dict[str, Any]]:
        """Events up to and including the next one of type ``kind``."""
        got = []
        async for message in self.peer.messages.receiver:
            event = json.loads(message)
            self.events.append(event)
            got.append(event)
            if event["type"] == kind:
                return got
        raise AssertionError(f"the call ended before {kind}: {[e['type'] for e in got]}")


async def post_offer(server: EmbeddedServer, body: bytes | str, *, key: str | None,
                     content_type: str = "application/sdp", path: str = "/v1/realtime/calls",
                     **kwargs: Any) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        return await client.post(path, content=body, headers=headers, **kwargs)


async def mint(server: EmbeddedServer, **body: Any) -> str:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        response = await client.post("/v1/realtime/client_secrets", json=body,
                                     headers={"Authorization": f"Bearer {server.api_key}"})
    assert response.status_code == 200
    return response.json()["value"]


def multipart(parts: dict[str, str], boundary: str = "rtfleet-boundary-7") -> tuple[bytes, str]:
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode() + b"\r\n"
        for name, value in parts.items()
    ) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"] == "invalid_request_error"
    return error


async def open_call(server: EmbeddedServer, key: str | None = None) -> Caller:
    caller, offer = await Caller.offer(server)
    await caller.connect(await post_offer(server, offer, key=key or await mint(server)))
    return caller


# -- answering -----------------------------------------------------------------------------------


async def test_raw_sdp_with_client_secret_answers_201_and_runs_the_model(server):
    with trio.fail_after(20):
        secret = await mint(server, session={"type": "realtime", "instructions": "Be brief.",
                                             "output_modalities": ["text"]})
        caller, offer = await Caller.offer(server)
        response = await post_offer(server, offer, key=secret)
        assert response.headers["content-type"] == "application/sdp"
        assert response.headers["location"].startswith("/v1/realtime/calls/rtc_")
        assert response.text.startswith("v=0")
        await caller.connect(response)
        created = (await caller.until("session.created"))[0]
        assert created["session"]["instructions"] == "Be brief."
        await caller.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}})
        await caller.send({"type": "response.create"})
        turn = await caller.until("response.done")
    assert turn[-1]["response"]["status"] == "completed"
    assert "".join(e["delta"] for e in turn if e["type"] == "response.output_text.delta") == "You said: hi"
    record = server.connections[-1]
    assert record.transport == "webrtc" and record.call_id == caller.call_id
    assert record.auth_kind == "client_secret" and server.calls[caller.call_id].live
    assert [e["type"] for e in record.received] == ["conversation.item.create", "response.create"]
    assert server.stats.calls_answered == 1
    await caller.peer.aclose()


async def test_audio_goes_over_the_track_with_output_audio_buffer_events(server):
    with trio.fail_after(20):
        caller = await open_call(server)
        await caller.until("session.created")
        # caller audio from the track reaches the VAD: a 600 ms tone makes an audio turn
        caller.peer.feed_audio(tone(440, 600, amplitude=0.3) + bytes(PCM_RATE * 2 * 700 // 1000))
        turn = await caller.until("output_audio_buffer.stopped")
        audio = bytearray()
        while len(audio) < PCM_RATE * 2 * 300 // 1000:  # the model's tone, decoded
            audio += await caller.peer.audio_in.receiver.receive()
    types = [e["type"] for e in turn]
    assert types[:3] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                         "input_audio_buffer.committed"]
    assert "response.output_audio.delta" not in types  # played, not sent
    assert "response.output_audio_transcript.delta" in types
    started = types.index("output_audio_buffer.started")
    assert started < types.index("response.done") < types.index("output_audio_buffer.stopped")
    response_id = turn[types.index("response.done")]["response"]["id"]
    assert turn[started]["response_id"] == turn[-1]["response_id"] == response_id
    assert server.calls[caller.call_id].audio_ms_played == 600  # "audio of N ms" -> 6 words
    await caller.peer.aclose()


async def test_output_audio_buffer_clear_and_barge_in(server):
    server.model_config = ModelConfig(pace=1.0, chunk_ms=400)  # 400 ms of audio per word
    with trio.fail_after(20):
        caller = await open_call(server)
        await caller.until("session.created")
        await caller.send({"type": "response.create"})
        await caller.until("output_audio_buffer.started")
        await caller.send({"type": "response.cancel"})
        await caller.send({"type": "output_audio_buffer.clear"})
        turn = await caller.until("output_audio_buffer.cleared")
        done = next(e for e in turn if e["type"] == "response.done")
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        assert turn[-1]["response_id"] == done["response"]["id"]
        # barge-in: speech while the model talks cancels the response and clears its audio
        await caller.send({"type": "response.create"})
        await caller.until("output_audio_buffer.started")
        caller.peer.feed_audio(tone(440, 400, amplitude=0.3))
        turn = await caller.until("output_audio_buffer.cleared")
    types = [e["type"] for e in turn]
    assert "input_audio_buffer.speech_started" in types
    done = next(e for e in turn if e["type"] == "response.done")
    assert done["response"]["status_details"]["reason"] == "turn_detected"
    assert "output_audio_buffer.stopped" not in types
    await caller.peer.aclose()


async def test_multipart_form_with_a_standard_key_and_session(server):
    caller, offer = await Caller.offer(server)
    session = {"type": "realtime", "model": "gpt-realtime-mini", "instructions": "From the form."}
    body, content_type = multipart({"sdp": offer, "session": json.dumps(session)})
    with trio.fail_after(20):
        await caller.connect(await post_offer(server, body, key=server.api_key, content_type=content_type))
        created = (await caller.until("session.created"))[0]
    assert created["session"]["model"] == "gpt-realtime-mini"
    assert created["session"]["instructions"] == "From the form."
    assert server.connections[-1].auth_kind == "api_key"
    await caller.peer.aclose()


def test_parse_form_data():
    body, content_type = multipart({"sdp": "v=0\r\nline", "session": "{}"})
    assert parse_form_data(content_type, body) == {"sdp": b"v=0\r\nline", "session": b"{}"}
    assert parse_form_data('multipart/form-data; boundary="rtfleet-boundary-7"', body)["session"] == b"{}"
    for bad_type, bad_body in [("multipart/form-data", body), (content_type, body[:-10]),
                               (content_type, b"--rtfleet-boundary-7\r\nno separator\r\n--rtfleet-boundary-7--")]:
        with pytest.raises(ValueError):
            parse_form_data(bad_type, bad_body)


# -- refusals ------------------------------------------------------------------------------------


async def test_bad_sdp_is_400(server):
    secret = await mint(server)
    error = assert_error(await post_offer(server, "hello, not SDP", key=secret), 400, "invalid_offer")
    assert error["param"] == "sdp" and "not an SDP offer" in error["message"]
    no_channel = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    error = assert_error(await post_offer(server, no_channel, key=secret), 400, "invalid_offer")
    assert "data channel" in error["message"]
    assert server.calls == {} and server.stats.calls_refused == 2
    assert [r for r in server.connections if r.transport == "webrtc"] == []


@pytest.mark.parametrize("key", [None, "ek_unknown_secret", "sk-wrong"])
async def test_missing_or_unknown_key_is_401(server, key):
    caller, offer = await Caller.offer(server)
    error = assert_error(await post_offer(server, offer, key=key), 401, "invalid_api_key")
    assert key is None or key not in error["message"]
    await caller.peer.aclose()


async def test_expired_secret_is_401(server):
    secret = await mint(server, expires_after={"anchor": "created_at", "seconds": 10})
    server.clock.now += 11
    error = assert_error(await post_offer(server, "v=0\r\n", key=secret), 401, "invalid_api_key")
    assert "expired" in error["message"]


async def test_reject_keys_fault_refuses_calls(server):
    secret = await mint(server)
    server.faults = FaultPlan(reject_keys=True)
    assert_error(await post_offer(server, "v=0\r\n", key=secret), 401, "invalid_api_key")
    assert server.stats.faults.keys_rejected == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", ""])
async def test_wrong_content_type_is_415(server, content_type):
    secret = await mint(server)
    error = assert_error(await post_offer(server, "v=0\r\n", key=secret, content_type=content_type),
                         415, "unsupported_media_type")
    assert "application/sdp" in error["message"]


async def test_bad_multipart_forms_are_400(server):
    secret = await mint(server)
    body, content_type = multipart({"session": "{}"})
    error = assert_error(await post_offer(server, body, key=secret, content_type=content_type),
                         400, "missing_required_parameter")
    assert error["param"] == "sdp"
    body, content_type = multipart({"sdp": "v=0\r\n", "session": "{not json"})
    assert_error(await post_offer(server, body, key=secret, content_type=content_type), 400, "invalid_json")
    body, content_type = multipart({"sdp": "v=0\r\n", "session": json.dumps({"type": "realtime", "voice": 3})})
    error = assert_error(await post_offer(server, body, key=secret, content_type=content_type),
                         400, "unknown_parameter")
    assert error["param"] == "session.voice"
    assert_error(await post_offer(server, b"garbage", key=secret, content_type="multipart/form-data; boundary=x"),
                 400, "invalid_multipart")


async def test_wrong_method_and_unknown_call_paths(server):
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        response = await client.get("/v1/realtime/calls")
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"
        assert_error(await client.post("/v1/realtime/calls/rtc_x/accept"), 404, "not_found")


async def test_webrtc_disabled_is_501(nursery):
    server = EmbeddedServer.with_generated_key(webrtc=False)
    await nursery.start(server.serve)
    error = assert_error(await post_offer(server, "v=0\r\n", key=server.api_key), 501, "webrtc_unavailable")
    assert "disabled" in error["message"]


def test_the_plain_websocket_server_imports_no_aiortc():
    script = textwrap.dedent("""
        import sys, trio
        from standin import EmbeddedServer
        from standin.testing import open_client

        async def main():
            server = EmbeddedServer.with_generated_key()
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve)
                async with open_client(server.base_url, key=server.api_key) as client:
                    assert (await client.recv())["type"] == "session.created"
                nursery.cancel_scope.cancel()
            loaded = [m for m in ("aiortc", "trio_asyncio", "av", "actors.rtc.loop") if m in sys.modules]
            assert not loaded, loaded

        trio.run(main)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


# -- hangup, sideband, faults ---------------------------------------------------------------------


async def test_hangup_ends_the_call(server):
    with trio.fail_after(20):
        caller = await open_call(server)
        await caller.until("session.created")
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            path = f"/v1/realtime/calls/{caller.call_id}/hangup"
            secret = await mint(server)
            assert_error(await client.post(path, headers={"Authorization": f"Bearer {secret}"}),
                         401, "invalid_api_key")  # call control needs a standard key
            auth = {"Authorization": f"Bearer {server.api_key}"}
            response = await client.post(path, headers=auth)
            assert response.status_code == 200 and response.json() == {}
            await caller.peer.ended.wait()
            assert_error(await client.post(path, headers=auth), 404, "call_not_found")
    record = server.connections[-1]
    assert record.closed.is_set() and record.closed_by == "server"
    assert record.end_reason == "hung up by request"
    assert server.calls == {} and server.stats.calls_ended == 1
    await caller.peer.aclose()


async def test_sideband_attaches_to_a_live_call(server):
    with trio.fail_after(20):
        caller = await open_call(server)
        created = (await caller.until("session.created"))[0]
        async with open_client(server.base_url, key=server.api_key, model=None,
                               call_id=caller.call_id) as sideband:
            hello = await sideband.recv()
            assert hello["type"] == "session.created"
            assert hello["session"]["id"] == created["session"]["id"]
            # an event from the sideband goes to the call's model; both sides see the result
            await sideband.send({"type": "session.update",
                                 "session": {"type": "realtime", "instructions": "Sideband says hi."}})
            assert (await sideband.recv())["type"] == "session.updated"
            updated = (await caller.until("session.updated"))[-1]
            assert updated["session"]["instructions"] == "Sideband says hi."
            # an event from the data channel: the sideband sees the call's server events
            await caller.send({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}})
            assert [e["type"] for e in await sideband.recv_until("conversation.item.done")] == [
                "conversation.item.added", "conversation.item.done"]
            sideband_record = server.connections[-1]
            assert sideband_record.transport == "sideband"
            assert sideband_record.session is server.calls[caller.call_id].session
            await server.hangup_calls()
            with pytest.raises(Exception):
                await sideband.recv()
            assert sideband.close_code == 1000
    await caller.peer.aclose()


async def test_drop_after_events_closes_the_peer_connection(server):
    with trio.fail_after(20):
        caller = await open_call(server)
        await caller.until("session.created")
        server.faults = FaultPlan(drop_after_events=3)
        await caller.send({"type": "response.create",
                           "response": {"output_modalities": ["text"]}})
        await caller.peer.ended.wait()
    assert server.stats.faults.drops["after_events"] == 1
    assert server.stats.faults.rtc_calls_closed == 1
    record = server.connections[-1]
    await record.closed.wait()
    assert record.events_sent == 3 and record.closed_by == "server"
    await caller.peer.aclose()


async def test_expiry_sends_session_expired_then_closes(server):
    server.faults = FaultPlan(expire_after_s=0.2)
    with trio.fail_after(20):
        caller = await open_call(server)
        events = await caller.until("error")
        await caller.peer.ended.wait()
    assert events[-1]["error"]["code"] == "session_expired"
    assert server.stats.faults.sessions_expired == 1
    await caller.peer.aclose()


async def test_malformed_messages_on_the_data_channel(server):
    server.faults = FaultPlan(malformed_every=1, malformed_kinds=("invalid_json",))
    with trio.fail_after(20):
        caller = await open_call(server)
        first = await caller.peer.messages.receiver.receive()
        second = await caller.peer.messages.receiver.receive()
    assert json.loads(first)["type"] == "session.created"
    with pytest.raises(ValueError):
        json.loads(second)
    assert server.stats.faults.malformed["invalid_json"] >= 1
    await caller.peer.aclose()


async def test_client_leaving_ends_the_call_on_the_server(server):
    with trio.fail_after(20):
        caller = await open_call(server)
        await caller.until("session.created")
        call = server.calls[caller.call_id]
        await caller.peer.aclose()
        await call.ended.wait()
    assert server.connections[-1].closed_by == "client"
    assert server.calls == {}
