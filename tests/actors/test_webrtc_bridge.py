"""The aiortc bridge and the server-side answerer, back to back in one process over loopback.

Every wait is on an event or a channel; ``fail_after`` bounds are safety nets only.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import trio

pytest.importorskip("aiortc", reason="needs the webrtc extra: pip install -e .[webrtc]")
pytest.importorskip("trio_asyncio", reason="needs the webrtc extra")

from actors.rtc.ice import host_addresses_for, is_loopback_host
from actors.rtc.inbox import Inbox
from actors.rtc.loop import open_rtc_loop
from actors.rtc.media import PCM_RATE, RtcError, tone
from actors.rtc.peer import RtcPeer
from standin.sessions.rtc_answer import RtcCall, answer_offer, offer_candidate_hosts

LOOPBACK = ("127.0.0.1",)


@pytest.fixture
async def rtc():
    async with open_rtc_loop() as loop:
        yield loop


def band_energy(pcm: bytes, freq: float, rate: int = PCM_RATE) -> float:
    """Share of the signal's energy within +-20 Hz of ``freq``."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    band = (freqs > freq - 20) & (freqs < freq + 20)
    return float(spectrum[band].sum() / spectrum.sum())


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt((x**2).mean()))


async def collect(channel: trio.MemoryReceiveChannel, nbytes: int) -> bytes:
    got = bytearray()
    while len(got) < nbytes:
        got += await channel.receive()
    return bytes(got)


async def connect_pair(rtc, nursery, **answer_kwargs) -> tuple[RtcPeer, RtcCall]:
    client = RtcPeer(rtc, host_addresses=LOOPBACK)
    offer = await client.create_offer()
    answer, call = await answer_offer(offer, rtc_loop=rtc, nursery=nursery, **answer_kwargs)
    await client.accept_answer(answer)
    await client.wait_open()
    await call.wait_open()
    return client, call


# -- pure helpers ------------------------------------------------------------------------------


def test_host_address_policy():
    assert host_addresses_for("127.0.0.1") == ("127.0.0.1",)
    assert host_addresses_for("localhost") == ("127.0.0.1",)
    assert host_addresses_for("::1") == ("::1",)
    assert host_addresses_for("api.openai.com") is None
    assert host_addresses_for("127.0.0.1", None) is None
    assert host_addresses_for("api.openai.com", ["10.0.0.2"]) == ("10.0.0.2",)
    assert is_loopback_host("127.3.4.5") and not is_loopback_host("10.0.0.1")
    with pytest.raises(ValueError):
        host_addresses_for("127.0.0.1", "everything")


async def test_inbox_counts_overflow_and_ignores_pushes_after_close():
    inbox: Inbox[int] = Inbox("t", 2)
    assert [inbox.push(i) for i in range(4)] == [True, True, False, False]
    assert (inbox.delivered, inbox.dropped) == (2, 2)
    assert [inbox.receiver.receive_nowait(), inbox.receiver.receive_nowait()] == [0, 1]
    inbox.close()
    assert inbox.push(9) is False


async def test_offer_uses_only_loopback_candidates(rtc):
    peer = RtcPeer(rtc, host_addresses=LOOPBACK)
    try:
        offer = await peer.create_offer()
    finally:
        assert await peer.aclose()
    hosts = offer_candidate_hosts(offer)
    assert hosts and set(hosts) == {"127.0.0.1"}
    assert "m=audio" in offer and "m=application" in offer and "a=sctp-port" in offer


async def test_answer_offer_rejects_what_is_not_an_offer(rtc):
    with pytest.raises(RtcError, match="not an SDP offer"):
        await answer_offer("hello", rtc_loop=rtc)
    with pytest.raises(RtcError, match="no data channel"):
        await answer_offer("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", rtc_loop=rtc)


# -- one process, both ends ------------------------------------------------------------------


async def test_data_channel_json_both_ways(rtc):
    received: trio.MemorySendChannel
    received, inbox = trio.open_memory_channel(100)

    async def on_open(call: RtcCall) -> None:
        await call.send_event({"type": "session.created", "session": {"id": "sess_1"}})

    async def on_message(call: RtcCall, text: str) -> None:
        event = json.loads(text)
        await received.send(event)
        await call.send_event({"type": "echo", "of": event["type"]})

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            client, call = await connect_pair(rtc, nursery, on_open=on_open, on_message=on_message)
            assert call.call_id.startswith("rtc_")
            first = json.loads(await client.messages.receiver.receive())
            assert first == {"type": "session.created", "session": {"id": "sess_1"}}
            await client.send_texts([json.dumps({"type": "response.create", "n": i}) for i in range(3)])
            for i in range(3):
                assert await inbox.receive() == {"type": "response.create", "n": i}
                assert json.loads(await client.messages.receiver.receive()) == {
                    "type": "echo", "of": "response.create"}
            assert await client.aclose()
            await call.closed.wait()  # the server sees the client leave
            assert call.end_reason in ("data channel closed", "peer connection closed")


async def test_audio_both_ways(rtc):
    """A 440 Hz tone up, a 660 Hz tone down; checked at the far side after resampling."""
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            client, call = await connect_pair(rtc, nursery)
            client.feed_audio(tone(440, 1200))
            call.play(tone(660, 1200))
            assert call.queued_audio_ms > 1000
            # skip the start (silence, codec warm-up), then analyse 600 ms
            half = PCM_RATE * 2 // 2
            up = (await collect(call.audio, half + 28_800))[half:]
            down = (await collect(client.audio_in.receiver, half + 28_800))[half:]
            await call.wait_played()
            assert call.queued_audio_ms == 0
            await client.aclose()
            await call.close()
    assert rms(up) > 3000 and band_energy(up, 440) > 0.8
    assert rms(down) > 3000 and band_energy(down, 660) > 0.8
    assert band_energy(up, 660) < 0.05 and band_energy(down, 440) < 0.05


async def test_clear_audio_stops_playback(rtc):
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            client, call = await connect_pair(rtc, nursery)
            call.play(tone(660, 5000))
            dropped_ms = call.clear_audio()
            assert 4900 <= dropped_ms <= 5000 and call.queued_audio_ms == 0
            await call.wait_played()  # nothing queued: returns at once
            await client.aclose()
            await call.close()


async def test_burst_is_paced_and_arrives_in_order(rtc):
    """A burst of 1.3 KB messages, 4x the high-water mark: paced, nothing lost or reordered.

    (aiortc's SCTP moves about 300-450 KB/s on loopback under trio-asyncio, CPU-bound.)
    """
    count, size = 200, 1300
    seen: list[int] = []
    done = trio.Event()
    high = 0

    def on_message(call: RtcCall, text: str) -> None:
        seen.append(json.loads(text)["n"])
        if len(seen) == count:
            done.set()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            client, call = await connect_pair(rtc, nursery, on_message=on_message)
            payload = "x" * (size - 40)
            texts = [json.dumps({"type": "t", "n": i, "p": payload}) for i in range(count)]
            for start in range(0, count, 50):
                await client.send_texts(texts[start:start + 50])
                high = max(high, client.buffered_amount)
            await done.wait()
            await client.aclose()
            await call.close()
    assert seen == list(range(count))
    assert client.paced_waits > 0
    assert high <= client.high_water + size


async def test_closing_the_call_ends_the_client_peer(rtc):
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            client, call = await connect_pair(rtc, nursery)
            assert await call.close()
            await client.ended.wait()
            assert client.end_reason in ("data channel closed", "peer connection closed")
            with pytest.raises(RtcError):
                await client.send_texts(["late"])
            assert await client.aclose()


async def test_twenty_open_close_cycles_are_bounded_and_leak_no_threads():
    """Would hang (about one cycle in four) with trio-asyncio's lost executor cancellation.

    Each cycle: 3 calls with audio flowing both ways (so Opus encodes are in the executor
    when ``close()`` cancels the sender), then all six peers close concurrently.  A fresh
    loop per cycle also checks that ``open_rtc_loop`` joins its threads.
    """
    baseline: int | None = None
    for cycle in range(20):
        async with open_rtc_loop() as rtc:
            async with trio.open_nursery() as nursery:
                pairs = []
                with trio.fail_after(10):
                    for _ in range(3):
                        client, call = await connect_pair(rtc, nursery)
                        client.feed_audio(tone(440, 200))
                        call.play(tone(660, 200))
                        pairs.append((client, call))
                    for client, call in pairs:
                        await call.audio.receive()
                        await client.audio_in.receiver.receive()
                results: list[bool] = []

                async def close(closer) -> None:
                    results.append(await closer())

                with trio.fail_after(5):  # each close is bounded at 2 s
                    async with trio.open_nursery() as closing:
                        for client, call in pairs:
                            closing.start_soon(close, client.aclose)
                            closing.start_soon(close, call.close)
                assert results == [True] * 6, f"cycle {cycle}: a close timed out"
                assert rtc.peers == 0
        threads = threading.active_count()
        if cycle == 1:
            baseline = threads
        elif baseline is not None:
            assert threads <= baseline, f"cycle {cycle}: {threads} threads, baseline {baseline}"


async def test_oversized_message_is_refused_and_the_channel_lives_on(rtc):
    got = trio.Event()

    def on_message(call: RtcCall, text: str) -> None:
        if text == "small":
            got.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            client, call = await connect_pair(rtc, nursery, on_message=on_message)
            assert await client.send_texts(["x" * 300_000, "small"]) == [0]
            await got.wait()
            await client.aclose()
            await call.close()
