"""An answer as it is spoken (sans-I/O): its audio in ``chunk_ms`` chunks of the session's
output format, and the chunk each word's transcript delta goes out with.

Both dialects send an answer a chunk at a time, paced in real time, each chunk preceded by the
transcript deltas of the words that start in it. Two voices make the audio:

* the tone (:func:`tone_utterance`, the cheap default): ``word_ms`` of a sine tone a word, so
  with the echo model's ``word_ms == chunk_ms`` one word a chunk, exactly as before voices;
* speech (:func:`speech_utterance`): the words synthesized (``standin.speech``), cut into
  chunks; each word is placed in the voiced part of the audio in proportion to its letters
  (espeak-ng gives no word times), so a word's delta comes roughly as it is heard. The output
  transcript is the text, word for word, whatever the voice.

``pending`` audio (speech still being synthesized when the response starts) is an
:class:`Utterance` factory the response resolves at its first audio chunk; see
``standin.model.response``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from standin.model.audio import AudioFormat, Tone

__all__ = ["Utterance", "tone_utterance", "speech_utterance", "answer_audio", "Pending"]

#: a sample louder than this (of full scale) is voiced
_VOICED = 0.01


@attrs.frozen
class Utterance:
    #: audio in the output format, ``chunk_ms`` each (the last one may be shorter)
    chunks: tuple[bytes, ...]
    #: each chunk's duration in ms
    durations: tuple[int, ...]
    #: for each word, the index of the chunk its transcript delta goes out with (non-decreasing,
    #: each < len(chunks))
    word_chunk: tuple[int, ...]

    @property
    def audio_ms(self) -> int:
        return sum(self.durations)


#: speech being synthesized: called when the first chunk is due (it may wait for it)
Pending = Callable[[], Utterance]


def tone_utterance(tone: Tone, fmt: AudioFormat, words: list[str], chunk_ms: int, word_ms: int) -> Utterance:
    """``word_ms`` of ``tone`` a word, in ``chunk_ms`` chunks (the tone keeps its phase)."""
    total = max(1, len(words)) * word_ms
    durations = [chunk_ms] * (total // chunk_ms) + ([total % chunk_ms] if total % chunk_ms else [])
    chunks = tuple(tone.chunk(fmt, ms) for ms in durations)
    last = len(chunks) - 1
    return Utterance(chunks, tuple(durations), tuple(min(last, i * word_ms // chunk_ms) for i in range(len(words))))


def speech_utterance(audio: bytes, fmt: AudioFormat, words: list[str], chunk_ms: int) -> Utterance:
    """Speech ``audio`` (wire bytes in ``fmt``) in ``chunk_ms`` chunks, the words placed across
    its voiced part by their letters."""
    width = fmt.sample_width
    audio = audio[: len(audio) - len(audio) % width] or bytes(width * fmt.rate * chunk_ms // 1000)
    step = fmt.rate * chunk_ms // 1000 * width
    chunks = tuple(audio[i:i + step] for i in range(0, len(audio), step))
    durations = tuple(round(fmt.duration_ms(len(c))) for c in chunks)
    samples = fmt.decode(audio)
    voiced = np.flatnonzero(np.abs(samples) > _VOICED)
    first, last = (int(voiced[0]), int(voiced[-1])) if len(voiced) else (0, len(samples))
    letters = [max(1, len(w.strip())) for w in words]
    before = np.concatenate([[0], np.cumsum(letters)[:-1]]) if letters else np.zeros(0)
    starts = first + before / max(1, sum(letters)) * (last - first)  # in samples
    per_chunk = step // width
    word_chunk = tuple(min(len(chunks) - 1, int(s) // per_chunk) for s in starts)
    return Utterance(chunks, durations, word_chunk)


def answer_audio(voice: Any, tone: Tone, fmt: AudioFormat, text: str, words: list[str], chunk_ms: int,
                 wps: float | None, session_voice: str | None = None) -> Utterance | Pending:
    """An answer's audio: ``tone`` for ``1 / wps`` a word (None: ``chunk_ms`` a word, the echo
    model), or with a ``voice`` (``standin.speech.SpeechVoice``) its speech being synthesized
    in the espeak-ng voice for the session's ``session_voice``, the tone if synthesis fails."""
    word_ms = chunk_ms if wps is None else round(1000 / wps)
    if voice is None:
        return tone_utterance(tone, fmt, words, chunk_ms, word_ms)
    speech = voice.prepare(text, fmt, None if wps is None else wps * 60, session_voice)

    def resolve() -> Utterance:
        audio = speech()
        if audio is None:
            return tone_utterance(tone, fmt, words, chunk_ms, word_ms)
        return speech_utterance(audio, fmt, words, chunk_ms)
    return resolve
