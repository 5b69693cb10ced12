"""Restart decisions for supervised sessions, as pure values.

Erlang/OTP vocabulary:

* **restart policy** of a child: ``permanent`` (always restarted), ``transient`` (restarted
  only after an abnormal exit), ``temporary`` (never restarted);
* **restart intensity**: more than ``max_restarts`` restarts within ``window`` seconds and
  the supervisor gives the child up (it ends in ``error``);
* **backoff**: full jitter, ``delay = uniform(0, min(cap, base * 2**attempt))``, with the
  attempt counter reset once a connection has stayed up for ``stable_after`` seconds.

Time is always a parameter (the trio clock in the shell), so all of this runs on a
``MockClock`` in tests.
"""

from __future__ import annotations

import enum
import random
from collections import deque

import attrs

from actors.exits import ActorExit, ExitReason

__all__ = ["RestartPolicy", "Backoff", "RestartIntensity", "should_restart"]


class RestartPolicy(enum.StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


@attrs.frozen
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    #: a connection that lasted this long resets the attempt counter
    stable_after: float = 30.0

    def delay(self, attempt: int, rng: random.Random, *, window: float = 0.0) -> float:
        """Full jitter: uniform over [0, min(cap, base * 2**attempt)], widened to at least
        ``window`` (the supervisor spreads a whole fleet's reconnects over
        ``sessions / herd_rate`` seconds so that a mass drop does not come back as one burst)."""
        ceiling = max(min(self.cap, self.base * (2 ** min(attempt, 62))), window)
        return rng.uniform(0.0, ceiling)


@attrs.define
class RestartIntensity:
    """Counts restarts in a sliding window; ``allow`` records one and says if it is within."""

    max_restarts: int = 10
    window: float = 60.0
    _times: deque[float] = attrs.field(factory=deque, init=False)

    def allow(self, now: float) -> bool:
        times = self._times
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.max_restarts:
            return False
        times.append(now)
        return True

    @property
    def recent(self) -> int:
        return len(self._times)


def should_restart(policy: RestartPolicy, exit: ActorExit) -> bool:
    """The OTP rule, before intensity and auth handling are applied (a session the peer
    ended for good, ``ENDED``, is never restarted)."""
    if policy is RestartPolicy.TEMPORARY or exit.reason is ExitReason.ENDED:
        return False
    if policy is RestartPolicy.TRANSIENT:
        return exit.abnormal and exit.reason is not ExitReason.FATAL
    return exit.reason is not ExitReason.FATAL
