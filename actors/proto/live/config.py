"""The ``session.start`` of a Live session, from rtfleet's one session configuration.

A scenario or a fleet describes a session once (:class:`~actors.proto.session.SessionConfig`);
on Live it becomes ``session.start``'s ``session``: ``model`` (a Realtime model name, or none,
becomes :data:`~actors.proto.live.edge.DEFAULT_LIVE_MODEL`), ``instructions``, ``audio.format``
(from the input format: PCM16 24 kHz -> ``audio/pcm`` 24000, G.711 -> ``audio/pcmu``/``pcma``
8000), ``audio.output.voice``, and the conversation ``input`` the restore seeds. Live fixes
all of these at start; turn detection, transcription and output modalities have no Live
setting (Live always listens, transcribes and speaks) and are not sent. Live-only fields
(``delegation``, ``store``, ``safety_identifier``, ``triggers``) are not configurable yet.
"""

from __future__ import annotations

from typing import Any

from actors.proto.live.edge import DEFAULT_LIVE_MODEL

__all__ = ["live_model", "start_event"]

def live_model(model: str | None) -> str:
    """The Live model for a configured model name (Realtime names do not exist on Live)."""
    if not model or "realtime" in model:
        return DEFAULT_LIVE_MODEL
    return model


def _format(fmt: Any) -> dict[str, Any]:
    kind = fmt.get("type") if isinstance(fmt, dict) or hasattr(fmt, "get") else None
    if kind in ("audio/pcmu", "audio/pcma"):
        return {"type": kind, "rate": 8000}
    return {"type": "audio/pcm", "rate": 24000}


def start_event(config: Any, model: str | None, seed: list[dict[str, Any]]) -> dict[str, Any]:
    """``session.start`` for ``config`` (a SessionConfig or None) with ``seed`` as ``input``."""
    session: dict[str, Any] = {"model": live_model(model)}
    if config is not None:
        if config.instructions:
            session["instructions"] = config.instructions
        audio: dict[str, Any] = {"format": _format(config.input_format)}
        if config.voice:
            audio["output"] = {"voice": config.voice}
        session["audio"] = audio
    if seed:
        session["input"] = seed
    return {"type": "session.start", "session": session}
