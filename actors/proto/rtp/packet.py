"""RTP packets (RFC 3550 sec 5.1): encode and decode the fixed header and its extras.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers  (CC x 32)  |
    |   [extension: profile (16) | length in words (16) | data...]   |
    |   payload ...                        [padding ... | count]     |

:meth:`RtpPacket.decode` checks the version and that every length fits, skips the header
extension (keeping its bytes so that encode/decode round-trip) and strips padding.  For
any input it raises only :class:`RtpDecodeError`.

Errors::

    RtpError              base of the RTP package's errors
     └── RtpDecodeError   bytes that are not a valid RTP packet (or DTMF payload)
"""

from __future__ import annotations

import struct

import attrs

__all__ = ["RtpError", "RtpDecodeError", "RtpPacket", "RTP_VERSION", "HEADER_SIZE", "is_rtcp"]

RTP_VERSION = 2
HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")


class RtpError(Exception):
    """Base class of the RTP package's errors."""


class RtpDecodeError(RtpError, ValueError):
    """The bytes are not a valid RTP packet (or payload)."""


def is_rtcp(data: bytes) -> bool:
    """True for an RTCP packet multiplexed on the RTP port (RFC 5761 4: PT 64-95)."""
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223


def _check_range(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise RtpError(f"{name} {value} does not fit in {bits} bits")


@attrs.frozen
class RtpPacket:
    """One RTP packet.  ``padding`` is the number of padding bytes (0 for none).

    ``extension`` is ``(profile, data)`` with ``len(data)`` a multiple of 4, or ``None``.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding: int = 0

    def encode(self) -> bytes:
        """The packet as bytes; raises RtpError if a field is out of range."""
        _check_range("payload type", self.payload_type, 7)
        _check_range("sequence", self.sequence, 16)
        _check_range("timestamp", self.timestamp, 32)
        _check_range("SSRC", self.ssrc, 32)
        if len(self.csrc) > 15:
            raise RtpError("at most 15 CSRC identifiers")
        if not 0 <= self.padding <= 255:
            raise RtpError("padding must be 0..255 bytes")
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        for source in self.csrc:
            _check_range("CSRC", source, 32)
            parts.append(source.to_bytes(4, "big"))
        if self.extension is not None:
            profile, data = self.extension
            _check_range("extension profile", profile, 16)
            if len(data) % 4 or len(data) // 4 > 0xFFFF:
                raise RtpError("extension data must be whole 32-bit words")
            parts.append(_EXTENSION.pack(profile, len(data) // 4))
            parts.append(data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> "RtpPacket":
        """Parse one datagram; raises only RtpDecodeError."""
        if len(data) < HEADER_SIZE:
            raise RtpDecodeError(f"{len(data)} bytes is shorter than an RTP header")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpDecodeError(f"RTP version {first >> 6}, expected 2")
        offset = HEADER_SIZE
        count = first & 0x0F
        csrc: tuple[int, ...] = ()
        if count:
            end = offset + 4 * count
            if len(data) < end:
                raise RtpDecodeError("truncated CSRC list")
            csrc = struct.unpack_from(f"!{count}I", data, offset)
            offset = end
        extension = None
        if first & 0x10:
            if len(data) < offset + 4:
                raise RtpDecodeError("truncated header extension")
            profile, words = _EXTENSION.unpack_from(data, offset)
            end = offset + 4 + 4 * words
            if len(data) < end:
                raise RtpDecodeError("header extension longer than the packet")
            extension = (profile, bytes(data[offset + 4 : end]))
            offset = end
        stop = len(data)
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or offset + padding > stop:
                raise RtpDecodeError(f"bad padding count {padding}")
            stop -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:stop]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=padding,
        )
