"""``python -m standin --voice``: the stand-in's own entry point speaks its answers as
``rtfleet serve --voice`` does (espeak-ng's speech of the transcript, or the tone), and refuses
a bad voice with exit 2 before listening."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys

import pytest
import trio

KEY = "sk-standin-main-voice-test"
ENV = {**os.environ, "RTFLEET_SERVER_API_KEY": KEY}


async def _answer_audio(*options: str) -> tuple[bytes, str]:
    """Start ``python -m standin OPTIONS``, ask one text turn, return the answer's audio and
    transcript; the process must stop cleanly when its stdin closes."""
    from standin.testing import open_client

    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "standin", "--webrtc", "off", "--exit-on-stdin-eof", *options],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=ENV)
    try:
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some()
                assert chunk, f"the server exited before listening ({process.returncode})"
                line += chunk
        url = json.loads(line)["url"]
        async with open_client(url, key=KEY) as client:
            await client.recv()
            await client.send({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": "book a table"}]}})
            await client.send({"type": "response.create"})
            with trio.fail_after(30):
                events = await client.recv_until("response.done")
    finally:
        await process.stdin.aclose()
        with trio.fail_after(15):
            await process.wait()
        await process.stdout.aclose()
    assert process.returncode == 0
    audio = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")
    return audio, events[-1]["response"]["output"][0]["content"][0]["transcript"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")
async def test_voice_speech_speaks_the_answer_with_espeak_ng():
    from actors.speech import synthesize

    audio, transcript = await _answer_audio("--voice", "speech:en-gb")
    assert "book a table" in transcript
    assert audio == synthesize(transcript, voice="en-gb", lead_ms=0, trail_ms=0)


async def test_the_default_voice_is_still_the_tone():
    audio, _ = await _answer_audio()
    assert len(audio) >= 4800
    samples = [int.from_bytes(audio[i:i + 2], "little", signed=True) for i in range(0, min(len(audio), 4800), 2)]
    # the 440 Hz tone: about 2 x 440 zero crossings a second
    crossings = sum((a < 0) != (b < 0) for a, b in zip(samples, samples[1:]))
    assert abs(crossings / (len(samples) / 24_000) - 880) < 60


def test_a_bad_voice_exits_2_before_listening():
    done = subprocess.run([sys.executable, "-m", "standin", "--voice", "loud"], env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert "--voice: unknown voice 'loud': expected tone, speech or speech:VOICE" in done.stderr
