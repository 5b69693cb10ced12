"""Fuzz harness: Media Streams provider frames (and realtime events) through one call's core.

Input: frames separated by ``\\n``.  A frame that decodes as a JSON object with a ``type`` and
passes the realtime parser is a realtime server event for ``receive_realtime``; anything else
(including undecodable bytes, delivered as a binary frame) is a provider frame for
``receive_provider``.  The core never raises for either: malformed provider frames become
``media_streams.malformed`` notices.  At the end a barge-in runs on whatever is playing.
"""

from __future__ import annotations

from orchestrator.media_streams.call import MediaStreamsCall

from actors.proto.errors import ProtocolError
from actors.proto.realtime.events import parse_server_event

_MAX_FRAMES = 64


def check(data: bytes) -> None:
    call = MediaStreamsCall(dtmf="text")
    for raw in data.split(b"\n")[:_MAX_FRAMES]:
        try:
            frame: str | bytes = raw.decode("utf-8")
        except UnicodeDecodeError:
            frame = raw
        if isinstance(frame, str) and '"type"' in frame:
            try:
                event = parse_server_event(frame)
            except ProtocolError:
                pass
            else:
                call.receive_realtime(event)
                continue
        before = call.malformed
        actions = call.receive_provider(frame)
        assert isinstance(actions, list)
        assert call.malformed in (before, before + 1)
    call.barge_in()


if __name__ == "__main__":
    from _atheris import run

    run(__file__)
