"""How long the rules model takes: time to first audio, words per second, tool-decision delay.

A rules file's ``timing:`` section (and a rule's own, for that rule's answers) gives each of
three figures as a fixed value or a distribution the model draws from, per response:

``first_audio``
    from the response's start (``response.create``, or the end of the user's speech under
    server VAD) to its first audio (text: its first text) delta. Default: log-normal, median
    500 ms, 90th percentile 900 ms, within 200 ms..3 s. *Source*: the hosted service answers
    in ~500 ms from the request in US regions ("time-to-first-byte from the API is ~500 ms",
    Fora Soft, "OpenAI Realtime API voice agent production guide", 2026); OpenAI's GPT-4o
    system card gives 232 ms at best and 320 ms on average for the model alone (no network,
    no queueing). The 900 ms tail and the bounds are a judgement (the same guide: long
    sessions drift higher).
``words_per_second``
    how fast the answer is spoken: the pace of its transcript deltas and the length of its
    audio (a tone of ``1 / words_per_second`` a word; ``--voice speech`` speaks at that rate,
    rounded to 10 words a minute so that the speech cache is shared). Default: log-normal,
    median 2.5 (150 words a minute), 90th percentile 2.9, within 1.5..4. *Source*: the
    National Center for Voice and Speech's ~150 words a minute for conversational US English
    (audiobooks are read at 150-160); the spread is a judgement.
``tool_decision``
    from the response's start to its function call (``response.created`` and the call's
    events come together then). Default: log-normal, median 600 ms, 90th percentile 1.2 s,
    within 200 ms..5 s: a *judgement* (a call is the model's first output, like the first audio,
    plus its arguments as text); no published figure for the hosted service was found.

Forms (durations as ``500ms``, ``1.2s`` or seconds; words per second as a number)::

    first_audio: 700ms                                # fixed
    first_audio: {median: 500ms, p90: 900ms}          # log-normal (optional min:, max: bounds)
    first_audio: {min: 300ms, max: 800ms}             # uniform
    seed: 7                                           # file level only (default: the
                                                      # scenario's seed, else 0)

Delays are scaled by the model's ``pace`` (0: none, as fast as possible). Draws are
deterministic: each session of a model draws from its own ``random.Random`` seeded with the
seed and the session's number (its order of creation), so a run with the same seed and the
same order of sessions has the same timing. The echo model (no rules file) keeps its own
fixed timing: first audio at once, 100 ms of tone a word.
"""

from __future__ import annotations

import itertools
import math
import random

import attrs

__all__ = ["Dist", "Timing", "DEFAULT_TIMING", "FIELDS"]

#: the 90th percentile of the standard normal distribution
_Z90 = 1.2815515655446004


@attrs.frozen
class Dist:
    """A fixed value (``low == high``, no median), a uniform draw in ``[low, high]``, or a
    log-normal one given by its median and 90th percentile, kept within ``[low, high]``."""

    low: float
    high: float
    median: float | None = None
    p90: float | None = None

    @classmethod
    def fixed(cls, value: float) -> Dist:
        return cls(value, value)

    @classmethod
    def lognormal(cls, median: float, p90: float, low: float = 0.0, high: float = math.inf) -> Dist:
        return cls(low, high, median, p90)

    def draw(self, rng: random.Random) -> float:
        if self.median is None:
            return self.low if self.low == self.high else rng.uniform(self.low, self.high)
        assert self.p90 is not None
        sigma = (math.log(self.p90) - math.log(self.median)) / _Z90
        return min(self.high, max(self.low, rng.lognormvariate(math.log(self.median), sigma)))


@attrs.frozen
class Timing:
    first_audio: Dist
    words_per_second: Dist
    tool_decision: Dist
    #: None: not given (a scenario's seed may stand in; else 0)
    seed: int | None = None
    #: how many sessions drew their generator: the next one's number
    _sessions: itertools.count = attrs.field(factory=itertools.count, eq=False, repr=False)

    def session_rng(self) -> random.Random:
        """The generator of the next session: seeded with the seed and its number."""
        return random.Random(f"rtfleet-timing/{self.seed or 0}/{next(self._sessions)}")

    def merged(self, fields: dict[str, Dist]) -> Timing:
        """This timing with some fields replaced (a rule's own ``timing:``); same seed."""
        return attrs.evolve(self, **fields) if fields else self


#: the fields of a ``timing:`` section and what each one is
FIELDS = {"first_audio": "duration", "words_per_second": "rate", "tool_decision": "duration"}

DEFAULT_TIMING = Timing(
    first_audio=Dist.lognormal(0.5, 0.9, 0.2, 3.0),
    words_per_second=Dist.lognormal(2.5, 2.9, 1.5, 4.0),
    tool_decision=Dist.lognormal(0.6, 1.2, 0.2, 5.0),
)
