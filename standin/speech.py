"""The stand-in's speaking voice: ``rtfleet serve --voice speech`` and a scenario's
``target: {voice: speech}`` speak each answer with espeak-ng instead of the tone.

:class:`SpeechVoice` is what ``ModelConfig.voice`` holds. The model calls :meth:`~SpeechVoice.
prepare` when a response starts; synthesis (``actors.speech``: the espeak-ng program, PCM16
24 kHz) runs on a small thread pool while the response waits for its first audio, and the
callable it returns gives the audio in the session's output format (24 kHz PCM16, or G.711 at
8 kHz after a proper low-pass resampling) when the first chunk is due, waiting for the synthesis
if it is not done (~50-150 ms a sentence on one core). WebRTC and SIP calls get it the way they
get the tone: from the ``output_audio.delta`` audio.

Answers are cached per (text, espeak voice, rate, format), least recently used first out, up to
``cache_bytes`` (default 32 MiB, ~110 answers of 3 s at 24 kHz); the same answer asked by many
sessions at once is synthesized once. Rates come in words a minute, rounded to 10 (the rules'
drawn words per second, so that the cache is shared), within espeak-ng's 80-450.

Which espeak-ng voice speaks: with ``speech``, each session's own ``voice`` (``alloy``, ``ash``,
…) picks one through `SESSION_VOICES`, the same one every time and a different one for each
of the service's ten voices (a name not listed speaks ``en-us``); with ``speech:VOICE``, VOICE
speaks for every session.

`voice_from_option` reads the ``tone`` / ``speech`` / ``speech:VOICE`` option (``VOICE`` an
espeak-ng voice such as ``en-gb`` or ``en-us+f3``) and checks that espeak-ng speaks it, raising
`SpeechUnavailable` (what to install) or `SpeechFailed` (an unknown voice). A synthesis that
fails later (it should not) is logged and that answer is the tone.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable

import numpy as np

from actors.proto.audio import resample_rational
from actors.speech import (
    DEFAULT_RATE,
    BytesLRU,
    DEFAULT_VOICE,
    PCM_RATE,
    SpeechError,
    SpeechFailed,
    SpeechUnavailable,
    synthesize,
)
from standin.model.audio import PCM_24K, AudioFormat

__all__ = ["SpeechVoice", "voice_from_option", "SESSION_VOICES", "VOICE_CHOICES", "SpeechError", "SpeechFailed",
           "SpeechUnavailable"]

log = logging.getLogger(__name__)

VOICE_CHOICES = "tone, speech or speech:VOICE (an espeak-ng voice, e.g. speech:en-gb)"
INSTALL = ("the speaking stand-in (--voice speech) needs the espeak-ng program: apt-get install "
           "espeak-ng (macOS: brew install espeak-ng); pip install 'rtfleet[voice]' adds hearing")
_Key = tuple[str, str, int, str]

#: the espeak-ng voice that speaks for each of the service's voices (a session's
#: ``audio.output.voice``) under ``--voice speech``: all distinct; the Realtime default, alloy,
#: keeps espeak-ng's default; female voices take espeak-ng's female variants (+f)
SESSION_VOICES: dict[str, str] = {
    "alloy": DEFAULT_VOICE, "ash": "en-us+m3", "ballad": "en+m2", "coral": "en-us+f2",
    "echo": "en-us+m7", "sage": "en+f3", "shimmer": "en-us+f4", "verse": "en-gb-x-rp",
    "marin": "en-us+f1", "cedar": "en-gb-scotland",
}  # (espeak-ng 1.51 ignores a variant after "en-gb": "en-gb+f3" speaks as "en-gb"; "en+f3" does not)


class SpeechVoice:
    """espeak-ng speaking ``voice`` (None: each session's voice through `SESSION_VOICES`) at
    ``rate`` words a minute (unless a response asks for another rate), with a bounded cache of
    what it said."""

    def __init__(self, voice: str | None = None, rate: int = DEFAULT_RATE, *,
                 cache_bytes: int = 32 << 20, workers: int = 2) -> None:
        self.voice, self.rate, self.cache_bytes = voice, rate, cache_bytes
        self._cache = BytesLRU(cache_bytes)
        self._pending: dict[_Key, concurrent.futures.Future[bytes]] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="rtfleet-speech")
        #: answers synthesized, answers found cached (or being synthesized), failures
        self.synthesized = self.hits = self.failures = 0

    @property
    def cached_bytes(self) -> int:
        return self._cache.size

    def prepare(self, text: str, fmt: AudioFormat, wpm: float | None = None,
                session_voice: str | None = None) -> Callable[[], bytes | None]:
        """Start speaking ``text`` for a session whose voice is ``session_voice``; the callable
        gives its audio in ``fmt`` (waiting for it), or None if synthesis failed."""
        rate = self.rate_for(wpm)
        key = (text, self.espeak_voice(session_voice), rate, fmt.type)
        with self._lock:
            audio = self._cache.get(key)
            if audio is not None:
                self.hits += 1
                return lambda: audio
            future = self._pending.get(key)
            if future is None:
                future = self._pool.submit(self._synthesize, key, fmt)
                self._pending[key] = future
            else:
                self.hits += 1
        return lambda: self._wait(future, text)

    def espeak_voice(self, session_voice: str | None) -> str:
        """The espeak-ng voice speaking for a session whose voice is ``session_voice``."""
        if self.voice is not None:
            return self.voice
        return SESSION_VOICES.get(session_voice or "", DEFAULT_VOICE)

    def rate_for(self, wpm: float | None) -> int:
        """The espeak-ng rate speaking at ``wpm`` (None: the voice's own)."""
        return self.rate if wpm is None else min(450, max(80, int(wpm / 10 + 0.5) * 10))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _wait(self, future: concurrent.futures.Future[bytes], text: str) -> bytes | None:
        try:
            return future.result(timeout=60)
        except (SpeechError, concurrent.futures.TimeoutError) as exc:
            log.warning("speech for %r failed, the tone speaks it: %s", text[:60], exc)
            return None

    def _synthesize(self, key: _Key, fmt: AudioFormat) -> bytes:
        text, voice, rate, _ = key
        try:
            pcm = synthesize(text, voice=voice, rate=rate, lead_ms=0, trail_ms=0, cache=False)
            audio = to_format(pcm, fmt)
        except SpeechError:
            with self._lock:
                self.failures += 1
                self._pending.pop(key, None)
            raise
        with self._lock:
            self.synthesized += 1
            self._pending.pop(key, None)
            self._cache.put(key, audio)
        return audio


def to_format(pcm: bytes, fmt: AudioFormat) -> bytes:
    """PCM16 mono 24 kHz as ``fmt``'s wire bytes (G.711: low-pass resampled to 8 kHz)."""
    if fmt == PCM_24K:
        return pcm
    pcm = resample_rational(pcm, PCM_RATE, fmt.rate)
    return fmt.encode(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0)


def voice_from_option(option: str | None) -> SpeechVoice | None:
    """``tone`` (or None/empty): None, the model's tone; ``speech`` / ``speech:VOICE``: a
    checked `SpeechVoice`. Raises ValueError (not one of those), `SpeechUnavailable` or
    `SpeechFailed` (espeak-ng does not speak VOICE)."""
    name = (option or "tone").strip()
    if name == "tone":
        return None
    kind, _, voice = name.partition(":")
    if kind != "speech" or (_ and not voice.strip()):
        raise ValueError(f"unknown voice {option!r}: expected {VOICE_CHOICES}")
    voice = voice.strip() or None
    try:
        synthesize("ok", voice=voice or DEFAULT_VOICE, lead_ms=0, trail_ms=0, cache=False)
    except SpeechUnavailable:
        raise SpeechUnavailable(INSTALL) from None
    return SpeechVoice(voice)
