"""Input audio kept for a hearing model (sans-I/O): both dialects' sessions keep the samples
they were sent since a point in time, and hand the window of an utterance to the recognizer.

A session appends decoded samples (:meth:`KeptAudio.add`); when an utterance ends it takes the
utterance's window (:meth:`KeptAudio.take`), which also lets go of everything before the
window's end. A session that knows no earlier audio can be asked for (GPT-Live, whose VAD
always runs) bounds what it keeps between utterances with :meth:`KeptAudio.keep_last`.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

__all__ = ["KeptAudio"]


@attrs.define
class KeptAudio:
    """Samples at one rate, the first of them at ``start_ms`` of the session's input."""

    chunks: list[Any] = attrs.field(factory=list)
    start_ms: float = 0.0
    _samples: int = 0  # in all chunks

    def add(self, samples: Any) -> None:
        self.chunks.append(samples)
        self._samples += len(samples)

    def reset(self, at_ms: float) -> None:
        """Forget everything; the next samples start at ``at_ms``."""
        self.chunks, self.start_ms, self._samples = [], at_ms, 0

    def keep_last(self, ms: float, rate: int) -> None:
        """Keep at least the last ``ms`` and at most 10 % more: trimmed only once it is over,
        so a session streaming silence copies its buffer every few appends, not on each."""
        keep = round(ms * rate / 1000)
        if self._samples > keep + keep // 10:
            kept = np.concatenate(self.chunks)
            drop = len(kept) - keep
            self.chunks, self._samples = [kept[drop:]], keep
            self.start_ms += drop * 1000 / rate

    def take(self, start_ms: float, end_ms: float, rate: int) -> Any | None:
        """The samples from ``start_ms`` to ``end_ms`` (None: nothing kept); what comes before
        ``end_ms`` is let go."""
        if not self.chunks:
            return None
        kept = np.concatenate(self.chunks)
        first = max(0, round((start_ms - self.start_ms) * rate / 1000))
        last = max(first, round((end_ms - self.start_ms) * rate / 1000))
        rest = kept[last:]
        self.chunks, self._samples = [rest], len(rest)
        self.start_ms += last * 1000 / rate
        return kept[first:last]
