"""Rate limits as the fleet sees them: what the service announces, what it refused, and when
a new session may be admitted (sans-I/O: no trio, times are given as ``now``).

::

    tracker = RateLimitTracker()
    tracker.observe("3f2a…", "gpt-realtime", event["rate_limits"], now)   # rate_limits.updated
    tracker.refused(CONNECTIONS, "3f2a…", "gpt-realtime", connected=4)   # a refused connection
    admission_hold(tracker.readings("3f2a…", "gpt-realtime"), now=now, active=3, headroom=0.1)

``rate_limits.updated`` (``{rate_limits: [{name, limit, remaining, reset_seconds}]}``, after
each ``response.done``) is kept per key (the standard key's fingerprint: limits are an
organisation's, and the client secrets minted from one key share them) and model, one
:class:`LimitReading` a limit name, the latest wins.

Refusals, each its own category (:func:`rate_limited_category`), not "an error":

* ``connections``: a connection refused over a limit: an ``error`` ``rate_limit_exceeded``
  before ``session.created``, or HTTP 429 on the handshake / the WebRTC offer;
* ``responses``: an ``error`` ``rate_limit_exceeded`` in a connected session (a response
  refused, e.g. over the tokens per minute);
* ``key_mints``: HTTP 429 when minting a client secret (counted by the ``KeyManager``).

**Concurrency.** The hosted service announces request and token limits, never how many
sessions may be open at once. :func:`admission_hold` takes a concurrency ceiling from, in
order: a configured ``max_concurrent``; an announced entry named ``sessions`` (the embedded
server sends one when its fault plan sets ``max_concurrent_sessions``; the hosted service does
not); else what a refusal taught: a connection refused while *k* of the fleet's sessions for
that key and model were connected means the ceiling is at most *k*.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = ["CONNECTIONS", "KEY_MINTS", "RESPONSES", "CONCURRENCY_LIMIT", "LimitReading",
           "RateLimitTracker", "admission_hold", "is_rate_limited_error", "rate_limited_category"]

CONNECTIONS, RESPONSES, KEY_MINTS = "connections", "responses", "key_mints"
#: the name of an announced limit read as a concurrency limit (the embedded server's extension)
CONCURRENCY_LIMIT = "sessions"
RATE_LIMIT_CODE = "rate_limit_exceeded"


@attrs.frozen
class LimitReading:
    """One announced limit as seen at ``observed_at`` (trio-clock seconds)."""

    name: str
    limit: float
    remaining: float
    reset_seconds: float
    observed_at: float

    @property
    def resets_at(self) -> float:
        return self.observed_at + self.reset_seconds

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], now: float) -> LimitReading | None:
        """A reading from one ``rate_limits`` entry; None for an entry missing its numbers."""
        try:
            return cls(str(entry["name"]), float(entry["limit"]), float(entry["remaining"]),
                       max(0.0, float(entry.get("reset_seconds") or 0.0)), now)
        except (KeyError, TypeError, ValueError):
            return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "limit": self.limit, "remaining": self.remaining,
                "reset_seconds": self.reset_seconds, "observed_at": self.observed_at}


def is_rate_limited_error(payload: Any) -> bool:
    """Is this server event an ``error`` with code ``rate_limit_exceeded``?"""
    return (isinstance(payload, Mapping) and payload.get("type") == "error"
            and (payload.get("error") or {}).get("code") == RATE_LIMIT_CODE)


def rate_limited_category(kind: str, payload: Any, *, connected: bool) -> str | None:
    """The refusal an event of a session stands for (``connections``, ``responses``), or None.

    ``kind`` is the ConnectionEvent kind's value: a ``server`` ``error`` ``rate_limit_exceeded``
    is a refused connection before the session is connected and a refused response after; a
    ``state`` change whose reason is an HTTP 429 (the WebSocket handshake or the WebRTC offer
    refused) is a refused connection."""
    if kind == "server":
        if is_rate_limited_error(payload):
            return RESPONSES if connected else CONNECTIONS
        return None
    if kind == "state" and isinstance(payload, Mapping):
        reason = payload.get("reason")
        if isinstance(reason, str) and "HTTP 429" in reason and payload.get("to") in ("reconnecting", "error"):
            return CONNECTIONS
    return None


@attrs.define
class RateLimitTracker:
    """The latest announced limits per key and model, and the refusals seen."""

    #: (key, model) -> limit name -> its latest reading
    limits: dict[tuple[str, str], dict[str, LimitReading]] = attrs.field(factory=dict)
    #: category -> refusals (``connections``, ``responses``; ``key_mints`` live in the KeyManager)
    refusals: Counter[str] = attrs.field(factory=Counter)
    #: (key, model) -> the fewest connected sessions a connection was refused at
    learned_concurrency: dict[tuple[str, str], int] = attrs.field(factory=dict)
    #: rate_limits.updated events seen
    updates: int = 0
    #: when the first one was seen (None: not yet)
    first_update_at: float | None = None

    def observe(self, key: str, model: str, entries: Any, now: float) -> None:
        """One ``rate_limits.updated``'s ``rate_limits`` list."""
        if not isinstance(entries, list):
            return
        readings = self.limits.setdefault((key, model), {})
        for entry in entries:
            reading = LimitReading.from_entry(entry, now) if isinstance(entry, Mapping) else None
            if reading is not None:
                readings[reading.name] = reading
        self.updates += 1
        if self.first_update_at is None:
            self.first_update_at = now

    def refused(self, category: str, key: str, model: str, *, connected: int | None = None) -> None:
        """Count one refusal; a refused connection with ``connected`` sessions up teaches a
        concurrency ceiling of at most that many (at least 1)."""
        self.refusals[category] += 1
        if category == CONNECTIONS and connected is not None:
            ceiling = max(1, connected)
            known = self.learned_concurrency.get((key, model))
            self.learned_concurrency[(key, model)] = ceiling if known is None else min(known, ceiling)

    def readings(self, key: str, model: str | None = None) -> list[LimitReading]:
        """The latest readings for ``key`` and ``model`` (None: every model of the key)."""
        return [r for (k, m), named in self.limits.items() if k == key and (model is None or m == model)
                for r in named.values()]

    def learned(self, key: str, model: str | None = None) -> int | None:
        found = [n for (k, m), n in self.learned_concurrency.items()
                 if k == key and (model is None or m == model)]
        return min(found) if found else None

    def snapshot(self) -> dict[str, Any]:
        """Plain data (results.json): the latest readings by ``key/model``, refusals, learning."""
        return {
            "limits": {f"{k}/{m}": {n: r.to_dict() for n, r in sorted(named.items())}
                       for (k, m), named in sorted(self.limits.items())},
            "refusals": dict(sorted(self.refusals.items())),
            "learned_concurrency": {f"{k}/{m}": n for (k, m), n in sorted(self.learned_concurrency.items())},
            "updates": self.updates,
        }


def concurrency_ceiling(readings: Iterable[LimitReading], *, configured: int | None = None,
                        learned: int | None = None) -> tuple[int | None, str | None]:
    """The most sessions that may be open at once, and where that figure comes from
    (``configured``, ``announced``, ``learned``); (None, None) when nothing says."""
    if configured is not None:
        return configured, "configured"
    announced = [r.limit for r in readings if r.name == CONCURRENCY_LIMIT]
    if announced:
        return int(min(announced)), "announced"
    if learned is not None:
        return learned, "learned"
    return None, None


def admission_hold(readings: Iterable[LimitReading], *, now: float, active: int, headroom: float,
                   max_concurrent: int | None = None, learned: int | None = None) -> float | None:
    """When a new session may be admitted: None (now), a time (a rate window resets then), or
    ``math.inf`` (when a session ends: the concurrency ceiling is reached).

    ``headroom`` (0 <= h < 1) keeps that share of every limit unused: the sessions admitted
    (``active``) stay below ``floor(ceiling * (1 - h))`` (at least 1), and while an announced
    request or token limit has ``remaining <= h * limit`` admission waits for its reset."""
    readings = list(readings)
    ceiling, _ = concurrency_ceiling(readings, configured=max_concurrent, learned=learned)
    if ceiling is not None and active >= max(1, math.floor(ceiling * (1 - headroom) + 1e-9)):
        return math.inf
    hold: float | None = None
    for reading in readings:
        if reading.name == CONCURRENCY_LIMIT or reading.limit <= 0:
            continue
        if reading.remaining <= headroom * reading.limit and now < reading.resets_at:
            hold = reading.resets_at if hold is None else max(hold, reading.resets_at)
    return hold
