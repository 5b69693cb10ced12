"""The demo page in a real browser: headless Chromium with a fake microphone, over loopback.

Chromium plays a WAV file as its microphone (silence, a 440 Hz tone, silence, played once),
so the server's VAD hears one spoken turn; then the test types a text turn. The page reports
progress on ``window.rtfleetDemo``; the test waits on the page's own promises
(``rtfleetDemo.waitFor``) through CDP, each wait bounded by ``fail_after``. A screenshot is
written to the test's tmp directory (its path is printed).

Skips without Chromium unless ``RTFLEET_REQUIRE_BROWSER`` is set (CI sets it).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import trio

pytest.importorskip("aiortc", reason="needs the webrtc extra: pip install -e .[webrtc]")

from standin import EmbeddedServer

from tests.browser_cdp import chromium_or_skip, launch_chromium

TOKEN = "demo-token-browser-test"
MEDIA_FLAGS = [
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # lets Chromium offer 127.0.0.1 candidates, so the call stays on loopback
    "--allow-loopback-in-peer-connection",
]


@pytest.fixture
def chromium() -> str:
    return chromium_or_skip()


def write_microphone(path: Path, rate: int = 48_000) -> None:
    """2 s of silence (the call connects meanwhile), 0.8 s of tone, 1.5 s of silence."""
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(rate * 0.8)) / rate)
    samples = np.concatenate([np.zeros(rate * 2), tone, np.zeros(int(rate * 1.5))])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())


async def test_demo_page_connects_talks_and_plays_audio(chromium, tmp_path, nursery):
    server = EmbeddedServer.with_generated_key(demo_token=TOKEN, webrtc=True)
    await nursery.start(server.serve)
    write_microphone(tmp_path / "mic.wav")
    flags = [*MEDIA_FLAGS, f"--use-file-for-fake-audio-capture={tmp_path / 'mic.wav'}%noloop"]
    async with launch_chromium(chromium, tmp_path / "profile", extra_flags=flags) as browser:
        page = await browser.new_page()
        with trio.fail_after(20):
            await page.navigate(f"{server.base_url}/demo#token={TOKEN}")
            assert await page.evaluate("location.hash") == ""  # the token left the address bar
            await page.evaluate("document.getElementById('connect').click()")
            status = await page.evaluate(
                "rtfleetDemo.waitFor(d => ['connected', 'failed'].includes(d.status))"
                ".then(() => [rtfleetDemo.status, rtfleetDemo.error, rtfleetDemo.callId])",
                await_promise=True)
        assert status[0] == "connected", status
        call = server.calls[status[2]]

        # the microphone's tone is a spoken turn: the server's VAD answers it with audio
        with trio.fail_after(20):
            await page.evaluate(
                "rtfleetDemo.waitFor(d => d.events.some(e => e.type === 'output_audio_buffer.stopped'))",
                await_promise=True)
        # a text turn from the text box
        with trio.fail_after(20):
            await page.evaluate("document.getElementById('text').value = 'hello from chromium';"
                                "document.getElementById('send').click()")
            await page.evaluate(
                "rtfleetDemo.waitFor(d => d.events.filter(e => e.type === 'output_audio_buffer.stopped')"
                ".length >= 2 && d.transcript === 'You said: hello from chromium')",
                await_promise=True)
            # and the model's audio was played in the page
            await page.evaluate("rtfleetDemo.waitFor(d => d.audioEnergy > 0.001 && d.peakLevel > 0.05)",
                                await_promise=True)
        demo = await page.evaluate(
            "({types: rtfleetDemo.events.map(e => e.type), frames: rtfleetDemo.audioFrames,"
            " energy: rtfleetDemo.audioEnergy, peak: rtfleetDemo.peakLevel,"
            " sent: rtfleetDemo.sent.map(e => e.type), connectMs: rtfleetDemo.connectMs})")
        shot = tmp_path / "demo.png"
        width, height = await page.screenshot(shot)
        print(f"\nscreenshot: {shot} ({width}x{height}); connected in {demo['connectMs']} ms, "
              f"{demo['frames']} audio packets, energy {demo['energy']:.4f}, peak level {demo['peak']:.2f}")
        assert width > 0 and height > 0
        assert page.problems() == []

        types = demo["types"]
        assert types[0] == "session.created"
        assert types[1:4] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                              "input_audio_buffer.committed"]
        assert types.count("response.done") == 2 and types.count("output_audio_buffer.started") == 2
        assert "response.output_audio.delta" not in types
        assert demo["sent"] == ["conversation.item.create", "response.create"]
        record = call.record
        assert record.auth_kind == "client_secret" and server.stats.demo_secrets_minted == 1
        users = [i for i in record.items if i["role"] == "user"]
        assert users[0]["content"][0]["type"] == "input_audio"  # heard from the microphone
        assert users[1]["content"][0]["text"] == "hello from chromium"

        with trio.fail_after(10):
            await page.evaluate("document.getElementById('hangup').click()")
            await call.ended.wait()
        assert record.closed_by == "client"
