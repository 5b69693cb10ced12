"""Sans-I/O WebSocket frames for the client (:mod:`actors.wsconn` does the I/O).

* :func:`text_frame`: one final masked text frame, built here (RFC 6455 section 5.2) with the
  ``websockets`` C masking speed-up; the same bytes ``ClientProtocol.send_text`` writes when no
  extension is in use, for a third of the cost. Masking keys come from ``os.urandom``, read
  4 KiB at a time.
* :class:`FrameSplitter`: the server's bytes cut at frame boundaries in front of the
  ``websockets`` protocol; a whole unfragmented text frame becomes its message directly,
  everything else goes to the protocol whole (see the class).
* :class:`MessageAssembler`: data frames the protocol parsed in, whole messages out.
"""

from __future__ import annotations

import os
import struct
from collections import deque

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the wheel ships the C speed-up
    from websockets.utils import apply_mask

__all__ = ["FrameSplitter", "MessageAssembler", "frame_limit", "text_frame"]


#: a masked frame's head: its two bytes, the extended length if any, and the masking key
_HEAD_7 = struct.Struct("!BB4s")
_HEAD_16 = struct.Struct("!BBH4s")
_HEAD_64 = struct.Struct("!BBQ4s")


class _MaskKeys:
    """Masking keys from ``os.urandom`` (the strong source RFC 6455 section 5.3 asks for), read
    4 KiB at a time: one ``getrandom`` call per 1,024 frames instead of one per frame. The
    keys wait cut in a list (the same list for ever), so that a frame takes one with the
    list's own ``pop``, no Python call."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self.keys: list[bytes] = []
        #: the read cut into 4-byte keys in one C call
        self._cut = struct.Struct("4s" * (size // 4)).unpack

    def refill(self) -> bytes:
        """Cut a new read into keys; returns one of them (the list was empty)."""
        self.keys[:] = self._cut(os.urandom(self._size // 4 * 4))
        return self.keys.pop()

    def take(self) -> bytes:
        try:
            return self.keys.pop()
        except IndexError:
            return self.refill()

    def reset(self) -> None:
        self.keys.clear()


_mask_keys = _MaskKeys()
_pop_key = _mask_keys.keys.pop
os.register_at_fork(after_in_child=_mask_keys.reset)  # a forked child never reuses the parent's keys


def text_frame(data: bytes) -> bytes:
    """One final, masked text frame (RFC 6455 section 5.2; the mask key from ``os.urandom``,
    the masking by the ``websockets`` C speed-up): the bytes ``ClientProtocol.send_text``
    writes when no extension is in use, for a third of the cost."""
    try:
        mask = _pop_key()
    except IndexError:
        mask = _mask_keys.refill()
    size = len(data)
    if size < 126:
        head = _HEAD_7.pack(0x81, 0x80 | size, mask)
    elif size < 65536:
        head = _HEAD_16.pack(0x81, 0xFE, size, mask)
    else:
        head = _HEAD_64.pack(0x81, 0xFF, size, mask)
    return head + apply_mask(data, mask)


def frame_limit(protocol: ClientProtocol) -> int | None:
    """The largest frame the protocol accepts outside a fragmented message (websockets 16:
    ``max_message_size`` and ``max_fragment_size``; before: ``max_size``)."""
    limits = [getattr(protocol, name, None) for name in ("max_message_size", "max_fragment_size", "max_size")]
    present = [limit for limit in limits if limit is not None]
    return min(present) if present else None


class FrameSplitter:
    """Sans-I/O: the server's bytes cut at frame boundaries. A whole unfragmented text frame
    (the server's every event) becomes its message here, without the protocol's parser, which
    costs about ten times as much; every other frame (control frames, fragments, binary) is
    handed to the protocol whole, so the protocol always starts on a frame boundary and decides
    everything it decides today (pings answered, the close handshake, protocol errors). A
    masked frame or one over the size limit, and everything once the protocol is no longer
    open, goes to the protocol as it comes, so that it fails or closes the connection itself."""

    def __init__(self, max_size: int | None) -> None:
        self._max = max_size if max_size is not None else 2**63
        self._buffer = b""
        #: a fragmented message is under way (its frames all go to the protocol)
        self._fragmented = False
        #: everything goes to the protocol from now on
        self._passthrough = False

    def feed(self, data: bytes, protocol: ClientProtocol, out: deque) -> bool:
        """Cut ``data`` (what followed the last call's bytes): whole messages and what the
        protocol parsed go to ``out``, in order. True when the protocol was given bytes (only
        then can it have something new to say: frames, output, a close)."""
        if self._passthrough or protocol.state is not State.OPEN:
            self._to_protocol(self._buffer + data, protocol, out)
            self._buffer = b""
            return True
        fed = False
        if self._buffer:
            data = self._buffer + data
        view = memoryview(data)
        size = len(data)
        at = 0
        limit = self._max
        while size - at >= 2:
            first, second = data[at], data[at + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if size - at < 4:
                    break
                length = int.from_bytes(view[at + 2: at + 4], "big")
                head = 4
            elif length == 127:
                if size - at < 10:
                    break
                length = int.from_bytes(view[at + 2: at + 10], "big")
                head = 10
            if second & 0x80 or length > limit:  # the protocol refuses it
                self._passthrough = True
                fed = True
                self._to_protocol(bytes(view[at:]), protocol, out)
                at = size
                break
            stop = at + head + length
            if stop > size:
                break
            if first == 0x81 and not self._fragmented:  # FIN, no RSV bits, text
                out.append(_decode(view[at + head: stop]))
            else:
                opcode = first & 0x0F
                if opcode in (1, 2):
                    self._fragmented = not first & 0x80
                elif opcode == 0 and first & 0x80:
                    self._fragmented = False
                fed = True
                self._to_protocol(bytes(view[at: stop]), protocol, out)
                if protocol.state is not State.OPEN:  # closing: the protocol takes the rest
                    self._passthrough = True
                    self._to_protocol(bytes(view[stop:]), protocol, out)
                    at = size
                    break
            at = stop
        self._buffer = bytes(view[at:]) if at < size else b""
        view.release()
        return fed

    def end(self, protocol: ClientProtocol) -> None:
        """End of stream: a partial frame held here is the protocol's to judge, then the EOF."""
        if self._buffer:
            protocol.receive_data(self._buffer)
            self._buffer = b""
        protocol.receive_eof()

    @staticmethod
    def _to_protocol(data: bytes, protocol: ClientProtocol, out: deque) -> None:
        if data:
            protocol.receive_data(data)
            out.extend(protocol.events_received())


class MessageAssembler:
    """Sans-I/O: data frames in, whole messages out (text as ``str``), control frames ignored.

    The protocol object has already enforced the order of fragments and the size limit; a text
    message that is not valid UTF-8 is handed on as ``bytes`` (the receiver reports it)."""

    def __init__(self) -> None:
        self._fragments: list[bytes] = []
        self._text = False

    def take(self, frame: Frame) -> str | bytes | None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                return _decode(frame.data) if opcode is Opcode.TEXT else bytes(frame.data)
            self._fragments = [bytes(frame.data)]
            self._text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                return _decode(data) if self._text else data
        return None


def _decode(data: bytes | bytearray | memoryview) -> str | bytes:
    try:
        return str(data, "utf-8")
    except UnicodeDecodeError:
        return bytes(data)
