"""Compress (or stretch) a scenario's timeline: ``rtfleet run --time-scale 0.1``.

Scales the *schedule* — phase durations, the run's ``duration_limit``, pauses, fault times
and fault windows, and the embedded server's timed faults — by ``factor``; rates and
concurrency stay as they are, so a scaled run is a shorter rehearsal of the same shape with
proportionally fewer sessions.  Timeouts, latencies and audio are not scaled (they are
properties of the service and the media, not of the schedule).
"""

from __future__ import annotations

from typing import Any

import attrs

from orchestrator.scenario.faults import AddLatency, FaultEvent, KillServer, RejectKeys, ServerFaults
from orchestrator.scenario.model import Phase, Scenario
from orchestrator.scenario.steps import Pause

__all__ = ["scale_time"]

_SCALED: dict[type, tuple[str, ...]] = {
    Phase: ("duration",),
    Pause: ("duration",),
    FaultEvent: ("at",),
    AddLatency: ("duration",),
    RejectKeys: ("duration",),
    KillServer: ("restart_after",),
    ServerFaults: ("drop_at", "expire_after"),
}


def _scale(value: Any, factor: float) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_scale(v, factor) for v in value) if isinstance(value, tuple) else [
            _scale(v, factor) for v in value]
    if isinstance(value, dict):
        return {k: _scale(v, factor) for k, v in value.items()}
    cls = type(value)
    if not attrs.has(cls):
        return value
    changes: dict[str, Any] = {}
    for field in attrs.fields(cls):
        if not field.init:
            continue
        current = getattr(value, field.name)
        if field.name in _SCALED.get(cls, ()) and isinstance(current, (int, float)):
            changes[field.name] = current * factor
        elif isinstance(current, (list, tuple, dict)) or attrs.has(type(current)):
            scaled = _scale(current, factor)
            if scaled is not current:
                changes[field.name] = scaled
    return attrs.evolve(value, **changes) if changes else value


def scale_time(scenario: Scenario, factor: float) -> Scenario:
    if not factor > 0:
        raise ValueError(f"time scale must be > 0, got {factor}")
    if factor == 1:
        return scenario
    scaled = _scale(scenario, factor)
    return attrs.evolve(scaled, duration_limit=scenario.duration_limit * factor)

