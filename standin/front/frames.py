"""Client frames in, for the lean front: the common frame parsed here, the rest by ``websockets``.

Nearly every frame a realtime client sends is a whole (FIN), masked text frame of a few KB with
no reserved bits: an ``input_audio_buffer.append``. The ``websockets`` library's
:class:`~websockets.server.ServerProtocol` parses frames with a generator per frame, about four
times the cost of reading the header here and unmasking with its own C ``apply_mask``.

:class:`FrameReader` sits in front of the protocol and takes such a frame itself when the
protocol is open, has no extension and is not inside a fragmented message (then the protocol
would do nothing with it but hand it on: ``recv_frame`` of a FIN text or binary frame only
appends it to its events). Every other frame (control frames, fragments, unmasked, reserved bits,
over ``max_size``) goes to the protocol **from its first byte**, and the reader counts the
frame's bytes through so that the protocol is always given whole frames from a boundary: it
sees exactly the frames it would see alone, and answers them (pongs, close frames, protocol
errors) as it would. Once the protocol is no longer open, everything goes to it. A frame split
across reads (a header not yet whole, or a data frame this reader takes whose rest is still to
come) is kept here until the rest comes, as the protocol would keep it without a word: under
load a read often ends inside a frame, and handing that frame to the protocol cost the
connection its inline path twice (``lean.py``). At the end of the stream what was kept goes to
the protocol first.
"""

from __future__ import annotations

from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.speedups import apply_mask  # type: ignore[import-not-found]

__all__ = ["FrameReader"]

_TEXT = 0x81  # FIN, no reserved bits, opcode text
_BINARY = 0x82
_MASKED_16 = 0x80 | 126  # masked, a 16-bit payload length follows


class FrameReader:
    """``feed(data)`` returns the data frames and control frames received, in order."""

    def __init__(self, protocol: ServerProtocol, *, at_boundary: bool = True) -> None:
        """``at_boundary``: the protocol has been given nothing past the handshake (else every
        byte goes to it, as it may be inside a frame)."""
        self.protocol = protocol
        limits = [getattr(protocol, name, None) for name in ("max_message_size", "max_fragment_size")]
        self.max_size = min((n for n in limits if n is not None), default=None)
        #: frames are parsed here only with the protocol at a frame boundary, and a protocol
        #: that says whether it is inside a fragmented message (``current_size``)
        self.passthrough = not at_boundary or not hasattr(protocol, "current_size")
        #: the start of a frame not yet whole (its header, or a frame this reader takes): kept
        #: here until the rest comes, as the protocol would keep it (given to it at the end)
        self._buf = b""
        #: the first bytes of a frame the protocol is parsing, while its header is incomplete
        self._partial = b""
        self._owed = 0  # bytes of the frame the protocol is parsing that it has not been given
        self.fast_frames = 0  # frames taken here (tests and profiling)
        self.protocol_feeds = 0  # times the protocol was given bytes (or the end)

    def texts(self, data: bytes) -> list[bytes] | None:
        """The commonest read of all, one or more whole masked text frames of 126..65535
        bytes each (a 16-bit length) from a frame boundary to the read's end: their payloads,
        read as :meth:`feed` reads them (taken here); None for anything else, nothing read
        (give it to :meth:`feed`)."""
        end = len(data)
        if (end <= 8 or data[0] != _TEXT or data[1] != _MASKED_16 or self._buf or self._owed
                or self._partial or self.passthrough):
            return None
        protocol = self.protocol
        if protocol.state is not State.OPEN or protocol.extensions or protocol.current_size is not None:
            return None
        max_size = self.max_size
        size = (data[2] << 8 | data[3]) + 8
        if size == end:  # one frame: the read of a client that is not behind
            if max_size is not None and end - 8 > max_size:
                return None
            self.fast_frames += 1
            return [apply_mask(data[8:], data[4:8])]
        spans = []
        pos = 0
        while True:
            if pos + size > end or (max_size is not None and size - 8 > max_size):
                return None
            spans.append((pos, pos + size))
            pos += size
            if pos == end:
                break
            if end - pos <= 8 or data[pos] != _TEXT or data[pos + 1] != _MASKED_16:
                return None
            size = (data[pos + 2] << 8 | data[pos + 3]) + 8
        self.fast_frames += len(spans)
        return [apply_mask(data[a + 8:b], data[a + 4:a + 8]) for a, b in spans]

    def feed(self, data: bytes) -> list[Frame]:
        payloads = self.texts(data)
        if payloads is not None:
            return [Frame(Opcode.TEXT, payload) for payload in payloads]
        protocol = self.protocol
        if self._buf:
            data, self._buf = self._buf + data, b""
        end = len(data)
        frames: list[Frame] = []
        pos = 0
        if self._partial:  # the protocol has the start of a frame: how much more does it need?
            head = self._partial + data[:14]
            size, length = _header(head, 0, len(head))
            if size is None:
                self._partial += data
                return self._give(data, frames)
            self._owed = size + length - len(self._partial)
            self._partial = b""
        max_size = self.max_size
        while pos < end:
            everything = self.passthrough or protocol.state is not State.OPEN or protocol.extensions
            if self._owed or everything:
                take = end - pos if everything else min(self._owed, end - pos)
                self._give(data[pos:pos + take], frames)
                self._owed = max(0, self._owed - take)
                pos += take
                continue
            size, length = _header(data, pos, end)
            if size is None:
                if self._may_keep(data, pos, end):  # the protocol would wait for more too
                    self._buf = data[pos:]
                    return frames
                self._partial = data[pos:]  # the protocol answers what it already sees
                return self._give(self._partial, frames)
            head1 = data[pos]
            total = size + length
            if ((head1 == _TEXT or head1 == _BINARY) and data[pos + 1] & 0x80
                    and (max_size is None or length <= max_size) and protocol.current_size is None):
                if pos + total > end:  # a frame of ours whose rest is still to come: kept
                    self._buf = data[pos:]
                    return frames
                payload = apply_mask(data[pos + size:pos + total], data[pos + size - 4:pos + size])
                frames.append(Frame(Opcode.TEXT if head1 == _TEXT else Opcode.BINARY, payload))
                self.fast_frames += 1
                pos += total
                continue
            self._owed = total  # the protocol parses this one frame, from its first byte
        return frames

    def _may_keep(self, data: bytes, pos: int, end: int) -> bool:
        """The start of a frame whose header is not whole may wait here: it can be a frame this
        reader takes and nothing the protocol checks early (opcode, mask bit, a length over the
        limit) is wrong in it yet."""
        if end - pos < 2:
            return True
        head2 = data[pos + 1]
        if not (data[pos] == _TEXT or data[pos] == _BINARY) or not head2 & 0x80:
            return False
        if self.protocol.current_size is not None:
            return False
        length = head2 & 0x7F
        width = 2 if length == 126 else 8 if length == 127 else 0
        if width and end - pos < 2 + width:
            return True  # the length is not known yet (nor to the protocol)
        if width:
            length = int.from_bytes(data[pos + 2:pos + 2 + width], "big")
        return self.max_size is None or length <= self.max_size

    def feed_eof(self) -> list[Frame]:
        """The peer closed its side: the protocol is given what was kept here, then the end."""
        frames: list[Frame] = []
        if self._buf:
            kept, self._buf = self._buf, b""
            self._give(kept, frames)
        self.protocol_feeds += 1
        self.protocol.receive_eof()
        return frames + self.protocol.events_received()

    def _give(self, data: bytes, frames: list[Frame]) -> list[Frame]:
        self.protocol_feeds += 1
        self.protocol.receive_data(data)
        frames += self.protocol.events_received()
        return frames


def _header(data: bytes, pos: int, end: int) -> tuple[int, int] | tuple[None, None]:
    """(header size, payload length) of the frame at ``pos``; (None, None) while incomplete."""
    if end - pos < 2:
        return None, None
    head2 = data[pos + 1]
    length = head2 & 0x7F
    size = 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if head2 & 0x80 else 0)
    if end - pos < size:
        return None, None
    if length == 126:
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
    elif length == 127:
        length = int.from_bytes(data[pos + 2:pos + 10], "big")
    return size, length
