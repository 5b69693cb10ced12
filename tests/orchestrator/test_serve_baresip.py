"""A second real SIP user agent, baresip (Debian ``baresip``), calls ``rtfleet serve --sip-port``.

baresip runs headless from a config directory made here: its microphone is a WAV file (the
``aufile`` source: silence, a 440 Hz tone the server's VAD hears as speech, silence), and the
``sndfile`` filter writes what it sent and what it received (decoded PCMU) to WAV files. It
dials at start (``-e /dial``); when the microphone file ends, baresip hangs up by itself; the
test reads its stdout and answers "terminated" with ``/quit``. Then the received audio must
carry the model's spoken answer (RTP energy) and only after the caller spoke.

Skips without baresip unless ``RTFLEET_REQUIRE_BARESIP`` is set (``scripts/test.sh`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import trio

from tests.orchestrator.serve_process import rtfleet_serve

CONFIG = """\
sip_listen		127.0.0.1:0
sip_transports		udp
audio_source		aufile,{mic}
module_path		/usr/lib/baresip/modules
module			stdio.so
module			g711.so
module			aufile.so
module			sndfile.so
module_app		account.so
module_app		menu.so
snd_path		{dumps}
"""


@pytest.fixture
def baresip() -> str:
    path = shutil.which("baresip")
    if path is None:
        if os.environ.get("RTFLEET_REQUIRE_BARESIP"):
            pytest.fail("baresip is not installed, and RTFLEET_REQUIRE_BARESIP is set")
        pytest.skip("baresip is not installed (apt-get install baresip)")
    return path


def write_microphone(path: Path, rate: int = 8000) -> None:
    """1 s of silence, 0.8 s of tone, 2.5 s of silence (time for the answer), then the end."""
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(rate * 0.8)) / rate)
    samples = np.concatenate([np.zeros(rate), tone, np.zeros(int(rate * 2.5))])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())


def loud_windows(path: Path, threshold: float = 500.0) -> tuple[list[float], float]:
    """Start times (s) of the 100 ms windows whose RMS passes ``threshold``; and the length."""
    with wave.open(str(path)) as dump:
        rate = dump.getframerate()
        samples = np.frombuffer(dump.readframes(dump.getnframes()), "<i2").astype(float)
    step = rate // 10
    loud = [i / rate for i in range(0, len(samples) - step + 1, step)
            if np.sqrt(np.mean(samples[i:i + step] ** 2)) > threshold]
    return loud, len(samples) / rate


async def test_baresip_calls_and_hears_the_spoken_answer(baresip, tmp_path: Path) -> None:
    config = tmp_path / "baresip"
    dumps = tmp_path / "dumps"
    config.mkdir()
    dumps.mkdir()
    write_microphone(config / "mic.wav")
    (config / "config").write_text(CONFIG.format(mic=config / "mic.wav", dumps=dumps))
    (config / "accounts").write_text("<sip:tester@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
    lines: list[str] = []
    with trio.fail_after(60):
        async with rtfleet_serve("--sip-port", "0") as serve:
            process = await trio.lowlevel.open_process(
                [baresip, "-f", str(config), "-n", "127.0.0.1",
                 "-e", f"/dial sip:openai@127.0.0.1:{serve.sip_port}"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                pending = b""
                async for chunk in process.stdout:
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    lines += [line.decode(errors="replace") for line in complete]
                    if any("terminated" in line for line in lines):
                        await process.stdin.send_all(b"/quit\n")
                        break
                await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    text = "\n".join(lines)
    assert "Call established" in text, text[-3000:]
    assert process.returncode == 0, text[-3000:]
    received = next(dumps.glob("*-dec.wav"))
    sent = next(dumps.glob("*-enc.wav"))
    spoke, _ = loud_windows(sent)
    heard, length = loud_windows(received)
    assert spoke and 0.8 <= spoke[0] <= 1.2, spoke  # the caller's tone, 1 s in
    # the model answered with audio (~0.5 s of tone here), after the caller had spoken
    assert len(heard) >= 3, (heard, length)
    assert heard[0] > spoke[-1], (heard, spoke)
