"""The stand-in's ears: offline recognition of committed input audio against the phrases its
rules listen for (pocketsphinx, whose PyPI wheel ships an en-US acoustic model and dictionary).

Open-vocabulary decoding of synthetic speech is poor, so the recognizer decodes against a JSGF
grammar of the rules' phrases (`standin.model.rules.Rules.phrases`): it hears one of those or
nothing, and nothing falls back to the model's ``"audio of N ms"``. pocketsphinx's default
second (best-path) pass cut the last word off most utterances here ("what's the weather in");
``bestpath`` off made every in-grammar utterance of the measure exact, so it is off.

`Hearing.hear` is synchronous CPU work (~30-50 ms for 2-3 s of audio on one core) done when an
utterance is committed. Install: ``pip install 'rtfleet[voice]'`` (pocketsphinx);
`HearingUnavailable` says so when it is missing.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from actors.proto.audio import resample_rational

__all__ = ["Hearing", "HearingUnavailable", "grammar", "pcm16_at_recognizer_rate", "RATE"]

RATE = 16_000


class HearingUnavailable(RuntimeError):
    """pocketsphinx is not installed."""


def _words(phrase: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", phrase.casefold())


def grammar(phrases: list[str], known: Any = None) -> str:
    """A JSGF grammar accepting exactly one of ``phrases`` (words the dictionary lacks are dropped)."""
    alternatives = []
    for phrase in phrases:
        words = [w for w in _words(phrase) if known is None or known(w)]
        if words:
            alternatives.append("( " + " ".join(words) + " )")
    if not alternatives:
        raise ValueError("no phrase to listen for (the rules give no hear:, keywords or words)")
    return "#JSGF V1.0;\ngrammar rules;\npublic <utterance> = " + " | ".join(alternatives) + ";\n"


def pcm16_at_recognizer_rate(samples: np.ndarray, rate: int) -> bytes:
    """Float samples ([-1, 1]) at ``rate`` Hz as the recognizer takes them: PCM16 at 16 kHz."""
    pcm = np.round(np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2")
    return resample_rational(pcm, rate, RATE)


class Hearing:
    """One decoder listening for ``phrases``; not thread-safe (one trio thread uses it)."""

    def __init__(self, phrases: list[str]) -> None:
        try:
            from pocketsphinx import Config, Decoder
        except ImportError:
            raise HearingUnavailable("hearing needs pocketsphinx: pip install 'rtfleet[voice]' "
                                     "(or pip install pocketsphinx)") from None
        self._decoder = Decoder(Config(loglevel="FATAL", bestpath=False))
        self._decoder.add_jsgf_string("rules", grammar(phrases, self._known))
        self._decoder.activate_search("rules")
        self.phrases = phrases
        #: the words decoded -> the phrase as the rules wrote it (its case and punctuation)
        self._written = {}
        for phrase in phrases:
            self._written.setdefault(" ".join(w for w in _words(phrase) if self._known(w)), phrase)

    def _known(self, word: str) -> bool:
        try:
            return bool(self._decoder.lookup_word(word))
        except (KeyError, RuntimeError):
            return False

    def hear(self, samples: np.ndarray, rate: int) -> str | None:
        """The phrase heard in ``samples`` (float, [-1, 1]) at ``rate`` Hz, as the rules wrote it
        (case and punctuation), or None."""
        if len(samples) < rate // 10:
            return None
        pcm16k = pcm16_at_recognizer_rate(samples, rate)
        decoder = self._decoder
        decoder.start_utt()
        decoder.process_raw(pcm16k, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        text = " ".join(hyp.hypstr.split()) if hyp is not None else ""
        return self._written.get(text, text) or None
