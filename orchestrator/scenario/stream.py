"""The worker -> parent stream of ``rtfleet run --workers N``: length-prefixed msgpack frames.

A worker (``rtfleet run … --shard I/N --emit-fd FD``) writes frames to a pipe the parent
handed it (file descriptor ``FD``; its stdout and stderr stay free for diagnostics).  Each
frame is a 4-byte big-endian payload length followed by one msgpack map whose ``"k"`` names
its kind:

===========  ====================================================================
``hello``    first frame: ``v`` (stream version), ``shard`` ("I/N"), ``pid``
``progress`` once a second: ``p``, the runner's progress dict (as ``--json`` prints it)
``result``   the shard's whole results dict (``r``): counters, gauges, histograms (mergeable
             buckets, not percentiles), timeline, marks, session errors
``error``    the run could not be carried out: ``code`` (2 usage, 3 run failed), ``message``
``end``      last frame: ``code``, the worker's exit code
===========  ====================================================================

The parent decodes incrementally (:class:`FrameDecoder`).  A stream that stops inside a frame
(the worker died mid-write) raises :class:`TruncatedFrame` at its end; a length beyond
:data:`MAX_FRAME` or a payload that is not one msgpack map raises :class:`BadFrame`.  A
stream without its ``end`` frame is a worker that did not finish; the parent reports both.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Iterator

import msgpack

__all__ = ["VERSION", "MAX_FRAME", "StreamError", "TruncatedFrame", "BadFrame", "encode_frame",
           "FrameDecoder", "FrameWriter"]

VERSION = 1
#: the largest frame accepted (a shard's results with every histogram is far below this)
MAX_FRAME = 256 * 2**20
_HEADER = struct.Struct(">I")


class StreamError(Exception):
    """The worker stream is not well formed."""


class TruncatedFrame(StreamError):
    """The stream ended inside a frame."""


class BadFrame(StreamError):
    """A frame's length or payload is not valid."""


def _default(value: Any) -> Any:
    # what ``json.dumps(default=str)`` would write for the same value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def encode_frame(kind: str, **fields: Any) -> bytes:
    payload = msgpack.packb({"k": kind, **fields}, use_bin_type=True, default=_default)
    if len(payload) > MAX_FRAME:
        raise BadFrame(f"{kind} frame of {len(payload)} bytes is over the {MAX_FRAME}-byte limit")
    return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Feed bytes as they arrive; iterate the complete frames; ``close()`` at end of stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames = 0
        self.bytes = 0

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        self.bytes += len(data)
        return list(self._drain())

    def _drain(self) -> Iterator[dict[str, Any]]:
        buffer = self._buffer
        offset = 0
        try:
            while len(buffer) - offset >= _HEADER.size:
                (length,) = _HEADER.unpack_from(buffer, offset)
                if length > MAX_FRAME:
                    raise BadFrame(f"frame {self.frames + 1}: length {length} is over the "
                                   f"{MAX_FRAME}-byte limit (not a worker stream?)")
                end = offset + _HEADER.size + length
                if len(buffer) < end:
                    break
                payload = bytes(buffer[offset + _HEADER.size:end])
                offset = end
                try:
                    frame = msgpack.unpackb(payload, raw=False, strict_map_key=False)
                except Exception as exc:  # msgpack raises several types for bad data
                    raise BadFrame(f"frame {self.frames + 1}: not msgpack ({exc})") from None
                if not isinstance(frame, dict) or not isinstance(frame.get("k"), str):
                    raise BadFrame(f"frame {self.frames + 1}: not a map with a kind")
                self.frames += 1
                yield frame
        finally:
            del buffer[:offset]

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def close(self) -> None:
        """End of stream: raise :class:`TruncatedFrame` if it stopped inside a frame."""
        if not self._buffer:
            return
        have = len(self._buffer)
        if have < _HEADER.size:
            raise TruncatedFrame(f"stream ended inside a frame header after {self.frames} "
                                 f"frame(s) ({have} of {_HEADER.size} header bytes)")
        (length,) = _HEADER.unpack_from(self._buffer, 0)
        raise TruncatedFrame(f"stream ended inside frame {self.frames + 1} after {self.frames} "
                             f"whole frame(s) ({have - _HEADER.size} of {length} payload bytes)")


class FrameWriter:
    """The worker side: blocking writes of whole frames to a file descriptor (a pipe)."""

    def __init__(self, fd: int):
        self.fd = fd
        os.set_blocking(fd, True)

    def send(self, kind: str, **fields: Any) -> None:
        data = memoryview(encode_frame(kind, **fields))
        while data:
            written = os.write(self.fd, data)
            data = data[written:]

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
