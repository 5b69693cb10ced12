"""Fuzz harness: realtime JSON server events through the client core and its mirror.

Input: one or more frames separated by ``\\n``.  Each frame goes through the GA parser
(:func:`parse_server_event`, only :class:`ProtocolError` may escape), then through a GA and a
beta :class:`ClientCore` (``receive`` must never raise: bad frames come back as values), which
also feeds the :class:`SessionMirror`.  Frames that are JSON objects are also tried as client
events (``validate_client_event`` / ``encode_client_event`` / the beta translation, only
``ProtocolError``) and their ``session`` value as a :class:`SessionConfig` (only
``SessionConfigError``).  At the end each core loses its connection, reconnects and builds its
restore sequence from whatever the frames left in the mirror (nothing may raise), with a small
memory bound so that eviction runs too.
"""

from __future__ import annotations

import json
from typing import Any

from actors.proto.client import ClientCore
from actors.proto.client_values import SessionMemoryLimit
from actors.proto.realtime.beta import ga_to_beta_client
from actors.proto.errors import ProtocolError, SessionConfigError
from actors.proto.realtime.events import encode_client_event, parse_server_event, validate_client_event
from actors.proto.session import SessionConfig

_SESSION_CREATED = json.dumps({"type": "session.created", "session": {"id": "sess_fuzz"}})
_MAX_FRAMES = 64
_BOUND = 4096  # small, so that the memory bound's eviction runs too


def _frames(data: bytes) -> list[str | bytes]:
    frames: list[str | bytes] = []
    for raw in data.split(b"\n")[:_MAX_FRAMES]:
        try:
            frames.append(raw.decode("utf-8"))  # a WebSocket text frame is always UTF-8
        except UnicodeDecodeError:
            frames.append(raw)  # delivered as a binary frame
    return frames


def _as_client_event(event: Any) -> None:
    try:
        validate_client_event(event)
        encode_client_event(event)
        ga_to_beta_client(event)
    except ProtocolError:
        pass
    session = event.get("session")
    if isinstance(session, dict):
        try:
            SessionConfig.from_dict(session)
        except SessionConfigError:
            pass


def check(data: bytes) -> None:
    frames = _frames(data)
    cores = [ClientCore(dialect=d, max_restore_bytes=_BOUND) for d in ("ga", "beta")]
    for core in cores:
        core.connection_started()
    for frame in frames:
        try:
            event = parse_server_event(frame)
        except ProtocolError:
            event = None
        if isinstance(frame, str):
            try:
                decoded = json.loads(frame)
            except (ValueError, RecursionError):
                decoded = None
            if isinstance(decoded, dict):
                _as_client_event(decoded)
        for core in cores:
            results = core.receive(frame)
            assert 1 <= len(results) <= 2
            if core.dialect == "ga":
                assert isinstance(results[0], ProtocolError) == (event is None)
            if len(results) == 2:
                assert isinstance(results[1], SessionMemoryLimit)
            core.outgoing()
            assert core.restore_size <= _BOUND
    for core in cores:
        core.connection_lost()
        core.connection_started()
        core.receive(_SESSION_CREATED)
        for out in core.outgoing():
            encode_client_event(out)
        assert core.restore_size <= _BOUND


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
