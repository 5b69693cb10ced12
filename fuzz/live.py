"""Fuzz harness: GPT-Live server events through the Live dialect, its edge and the client core.

Input: one or more frames separated by ``\\n``. Each frame goes through the Live parser
(``actors.proto.live.events.parse_server_event``: only :class:`ProtocolError` may escape), then
through a :class:`ClientCore` speaking Live (``receive`` never raises: bad frames come back as
values; what the edge makes of good ones goes through the mirror, the audio-turn tracker and
the acknowledgements). Every few frames the output goes quiet (``output_quiet``) and the core
writes what it has; frames that are JSON objects are also tried as client events (Live or
canonical: only :class:`ProtocolError`). At the end the core loses its connection and builds
the next connection's greeting (``session.start`` seeded with the conversation) and restore
from whatever the frames left: nothing may raise, every written event encodes, and the restore
data stays under a small memory bound.
"""

from __future__ import annotations

import json

from actors.proto.client import ClientCore
from actors.proto.errors import ProtocolError
from actors.proto.live.dialect import LIVE
from actors.proto.live.events import parse_server_event
from actors.proto.realtime.events import encode_client_event

_STARTED = json.dumps({"type": "session.started", "event_id": "e", "session": {
    "id": "sess_fuzz", "expires_at": 2_000_000_000, "model": "gpt-live-1", "status": "active"}})
_MAX_FRAMES = 64
_BOUND = 4096


def check(data: bytes) -> None:
    frames: list[str | bytes] = []
    for raw in data.split(b"\n")[:_MAX_FRAMES]:
        try:
            frames.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            frames.append(raw)
    core = ClientCore(protocol=LIVE, max_restore_bytes=_BOUND)
    core.connection_started()
    for event in core.outgoing():
        encode_client_event(event)
    for n, frame in enumerate(frames):
        try:
            parsed = parse_server_event(frame, max_size=2**20)
        except ProtocolError:
            parsed = None
        if isinstance(frame, str):
            try:
                decoded = json.loads(frame)
            except (ValueError, RecursionError):
                decoded = None
            if isinstance(decoded, dict):
                try:
                    core.submit(decoded)
                except ProtocolError:
                    pass
        results = core.receive(frame)
        assert results and isinstance(results[0], ProtocolError) == (parsed is None)
        if n % 4 == 3:
            core.output_quiet()
        for event in core.outgoing():
            encode_client_event(event)
        assert core.restore_size <= _BOUND
    core.connection_lost()
    core.connection_started()
    for event in core.outgoing() + (core.receive(_STARTED) and core.outgoing()):
        encode_client_event(event)
    assert core.restore_size <= _BOUND


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
