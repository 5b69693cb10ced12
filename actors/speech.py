"""Offline speech synthesis with the ``espeak-ng`` program: words in, PCM16 mono 24 kHz out.

Used by the scenario's ``speak`` step (the user's utterance) and by the stand-in's
``--voice speech`` (its answers). espeak-ng is a Debian/Ubuntu package (``apt-get install
espeak-ng``; Homebrew ``espeak-ng``); it is run as a program (``--stdout`` gives a WAV at
22.05 kHz), resampled to the realtime protocol's 24 kHz with `actors.proto.audio`, and given
a little silence before and after so that a VAD hears a whole utterance. Results are cached
per (text, voice, rate, padding) for the life of the process.

Errors: `SpeechUnavailable` (espeak-ng is not installed: says what to install),
`SpeechFailed` (it ran and failed: its stderr). Both are `SpeechError`.

Synthesis blocks (a subprocess, ~30-100 ms a sentence): async callers run it in a thread.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
import wave

from actors.proto.audio import resample_rational

__all__ = ["SpeechError", "SpeechUnavailable", "SpeechFailed", "synthesize", "espeak_available",
           "PCM_RATE", "DEFAULT_VOICE", "DEFAULT_RATE"]

PCM_RATE = 24_000
DEFAULT_VOICE = "en-us"
#: words per minute (espeak-ng's own default is 175)
DEFAULT_RATE = 160
INSTALL_HINT = "install espeak-ng (Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng)"


class SpeechError(Exception):
    """Speech could not be synthesized."""


class SpeechUnavailable(SpeechError):
    """The espeak-ng program is not installed."""


class SpeechFailed(SpeechError):
    """espeak-ng ran and failed (an unknown voice, a bad rate)."""


_cache: dict[tuple[str, str, int, int, int], bytes] = {}
_lock = threading.Lock()


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize(text: str, *, voice: str = DEFAULT_VOICE, rate: int = DEFAULT_RATE,
               lead_ms: int = 200, trail_ms: int = 400, cache: bool = True) -> bytes:
    """``text`` spoken as PCM16 mono 24 kHz, with ``lead_ms``/``trail_ms`` of silence around it
    (``cache=False``: not kept here; the stand-in's voice keeps a bounded cache of its own)."""
    key = (text, voice, rate, lead_ms, trail_ms)
    with _lock:
        cached = _cache.get(key) if cache else None
    if cached is not None:
        return cached
    program = shutil.which("espeak-ng")
    if program is None:
        raise SpeechUnavailable(f"speech synthesis needs the espeak-ng program: {INSTALL_HINT}")
    try:
        done = subprocess.run([program, "-v", voice, "-s", str(rate), "--stdout", text],
                              capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpeechFailed(f"espeak-ng: {exc}") from exc
    if done.returncode != 0 or not done.stdout.startswith(b"RIFF"):
        why = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise SpeechFailed(f"espeak-ng (voice {voice!r}, rate {rate}): {why}")
    pcm, source_rate = _wav_pcm(done.stdout)
    pcm = resample_rational(pcm, source_rate, PCM_RATE)
    out = bytes(PCM_RATE * 2 * lead_ms // 1000) + pcm + bytes(PCM_RATE * 2 * trail_ms // 1000)
    if cache:
        with _lock:
            _cache[key] = out
    return out


def _wav_pcm(data: bytes) -> tuple[bytes, int]:
    """PCM16 mono frames and rate of espeak-ng's ``--stdout`` WAV, whose header gives a
    streaming (bogus) length: the frames are whatever follows the header."""
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SpeechFailed(f"espeak-ng gave {w.getnchannels()} channels of {8 * w.getsampwidth()} bit")
        rate = w.getframerate()
        frames = w.readframes(len(data))
    return frames[: len(frames) - len(frames) % 2], rate
