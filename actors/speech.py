"""Offline speech synthesis with the ``espeak-ng`` program: words in, audio in the session's
input format out.

Used by the scenario's ``speak`` step (the user's utterance) and by the stand-in's
``--voice speech`` (its answers). espeak-ng is a Debian/Ubuntu package (``apt-get install
espeak-ng``; Homebrew ``espeak-ng``); it is run as a program (``--stdout`` gives a WAV at
22.05 kHz) and given a little silence before and after so that a VAD hears a whole utterance.

* `synthesize`: PCM16 mono at ``sample_rate`` (24 kHz, the realtime protocol's, by default),
  resampled straight from espeak-ng's rate with `actors.proto.audio.resample_rational`;
* `synthesize_g711`: a phone call's audio, G.711 µ-law (RTP payload type 0) or A-law (8) at
  8 kHz, from the 8 kHz PCM (one resampling, 22.05 -> 8 kHz, not 22.05 -> 24 -> 8);
* `estimated_seconds`: how long an utterance will last, from its text and rate, without
  synthesizing (cost estimates need no espeak-ng).

Results are cached per (text, voice, rate, padding, format) for the life of the process.

Errors: `SpeechUnavailable` (espeak-ng is not installed: says what to install),
`SpeechFailed` (it ran and failed: its stderr). Both are `SpeechError`.

Synthesis blocks (a subprocess, ~30-100 ms a sentence): async callers run it in a thread.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import threading
import wave

from actors.proto.audio import g711_encode, resample_rational

__all__ = ["SpeechError", "SpeechUnavailable", "SpeechFailed", "synthesize", "synthesize_g711",
           "estimated_seconds", "espeak_available", "PCM_RATE", "DEFAULT_VOICE", "DEFAULT_RATE",
           "LEAD_MS", "TRAIL_MS"]

PCM_RATE = 24_000
DEFAULT_VOICE = "en-us"
#: words per minute (espeak-ng's own default is 175)
DEFAULT_RATE = 160
#: silence before and after the words (a VAD hears the whole utterance and its end)
LEAD_MS = 200
TRAIL_MS = 400
INSTALL_HINT = "install espeak-ng (Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng)"


class SpeechError(Exception):
    """Speech could not be synthesized."""


class SpeechUnavailable(SpeechError):
    """The espeak-ng program is not installed."""


class SpeechFailed(SpeechError):
    """espeak-ng ran and failed (an unknown voice, a bad rate)."""


_cache: dict[tuple[str, str, int, int, int, str], bytes] = {}
_lock = threading.Lock()


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize(text: str, *, voice: str = DEFAULT_VOICE, rate: int = DEFAULT_RATE,
               lead_ms: int = LEAD_MS, trail_ms: int = TRAIL_MS, sample_rate: int = PCM_RATE,
               cache: bool = True) -> bytes:
    """``text`` spoken as PCM16 mono at ``sample_rate`` Hz, with ``lead_ms``/``trail_ms`` of
    silence around it (``cache=False``: not kept here; the stand-in's voice keeps a bounded
    cache of its own)."""
    key = (text, voice, rate, lead_ms, trail_ms, f"pcm{sample_rate}")
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
    pcm = resample_rational(pcm, source_rate, sample_rate)
    out = bytes(sample_rate * 2 * lead_ms // 1000) + pcm + bytes(sample_rate * 2 * trail_ms // 1000)
    if cache:
        with _lock:
            _cache[key] = out
    return out


def synthesize_g711(text: str, payload_type: int, *, voice: str = DEFAULT_VOICE,
                    rate: int = DEFAULT_RATE, lead_ms: int = LEAD_MS, trail_ms: int = TRAIL_MS) -> bytes:
    """``text`` spoken as a phone call's audio: 8 kHz G.711 of RTP payload type
    ``payload_type`` (0 PCMU µ-law, 8 PCMA A-law), one byte a sample."""
    if payload_type not in (0, 8):
        raise ValueError(f"payload type {payload_type} is not G.711 (0 PCMU, 8 PCMA)")
    key = (text, voice, rate, lead_ms, trail_ms, f"g711/{payload_type}")
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    pcm8 = synthesize(text, voice=voice, rate=rate, lead_ms=lead_ms, trail_ms=trail_ms,
                      sample_rate=8000, cache=False)  # only its G.711 is kept
    out = g711_encode(payload_type, pcm8)
    with _lock:
        _cache[key] = out
    return out


_WORDISH = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def estimated_seconds(text: str, *, rate: int = DEFAULT_RATE, lead_ms: int = LEAD_MS,
                      trail_ms: int = TRAIL_MS) -> float:
    """About how long `synthesize` makes ``text`` at ``rate`` words a minute, silences
    included, without running espeak-ng: 1.7 + 0.138 a letter "words" at the rate. Fitted to
    espeak-ng 1.51 (en-us, en-gb, 120-300 words a minute): within about 25 % for a sentence
    (tests/actors/test_speech.py holds it to 35 %)."""
    letters = sum(len(w) + 1 for w in _WORDISH.findall(text))
    words = (1.7 + 0.138 * letters) if letters else 0.0
    return words * 60.0 / rate + (lead_ms + trail_ms) / 1000


def _wav_pcm(data: bytes) -> tuple[bytes, int]:
    """PCM16 mono frames and rate of espeak-ng's ``--stdout`` WAV, whose header gives a
    streaming (bogus) length: the frames are whatever follows the header."""
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SpeechFailed(f"espeak-ng gave {w.getnchannels()} channels of {8 * w.getsampwidth()} bit")
        rate = w.getframerate()
        frames = w.readframes(len(data))
    return frames[: len(frames) - len(frames) % 2], rate
