"""DTMF as RTP telephone events (RFC 4733 sec 2.3).

Payload (4 bytes)::

     0                   1                   2                   3
    |     event     |E|R| volume    |          duration             |

``event`` 0-9 are the digits, 10 ``*``, 11 ``#``, 12-15 ``A``-``D``, 16 flash.  All
packets of one key press carry the same RTP timestamp (the start of the event) and a
growing ``duration`` in timestamp units; the last one has the end bit E and is sent
three times in case some are lost.

:class:`DtmfDetector` turns that stream into digits, each reported once: on the first end
packet, or - if every end packet was lost - when a packet of a newer event shows up, or
when :meth:`DtmfDetector.flush` is called after a quiet period.
:func:`dtmf_events` produces the payload sequence for sending one digit.
"""

from __future__ import annotations

import struct

import attrs

from .packet import RtpDecodeError, RtpPacket

__all__ = ["DtmfEvent", "DtmfDigit", "DtmfDetector", "dtmf_events", "DIGITS", "event_for_digit"]

DIGITS = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")


def event_for_digit(digit: str) -> int:
    """The event code of a DTMF key ("0"-"9", "*", "#", "A"-"D")."""
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return index


def _digit_for_event(event: int) -> str:
    return DIGITS[event] if event < len(DIGITS) else "flash" if event == 16 else f"event-{event}"


@attrs.frozen
class DtmfEvent:
    """One telephone-event payload.  ``volume`` is in -dBm0 (0..63), ``duration`` in
    timestamp units (8 kHz: 160 per 20 ms)."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def encode(self) -> bytes:
        if not (0 <= self.event <= 255 and 0 <= self.volume <= 63 and 0 <= self.duration <= 0xFFFF):
            raise ValueError(f"DTMF event field out of range: {self}")
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @classmethod
    def decode(cls, payload: bytes) -> "DtmfEvent":
        """Parse a payload (extra bytes, e.g. redundant blocks, are ignored)."""
        if len(payload) < 4:
            raise RtpDecodeError(f"telephone-event payload of {len(payload)} bytes")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    @property
    def digit(self) -> str:
        return _digit_for_event(self.event)


@attrs.frozen
class DtmfDigit:
    """A detected key press: ``duration`` in timestamp units, ``timestamp`` of its start."""

    digit: str
    duration: int
    timestamp: int


def dtmf_events(digit: str, *, duration_ms: int = 100, packet_ms: int = 20, volume: int = 10,
                clock_rate: int = 8000, end_repeats: int = 3) -> list[DtmfEvent]:
    """The payloads to send for one key press, one per ``packet_ms``.

    Send them with one RTP timestamp (the event start) and the marker bit on the first.
    """
    event = event_for_digit(digit)
    step = clock_rate * packet_ms // 1000
    total = clock_rate * duration_ms // 1000
    events = [DtmfEvent(event, False, volume, d) for d in range(step, total, step)]
    events += [DtmfEvent(event, True, volume, min(total, 0xFFFF))] * end_repeats
    return events


@attrs.define
class DtmfDetector:
    """Reports each key press of an RFC 4733 stream exactly once."""

    payload_type: int = 101
    _current: tuple[int, int] | None = None  # (timestamp, event) in progress
    _duration: int = 0
    _reported: set[tuple[int, int]] = attrs.field(factory=set)
    _recent: list[tuple[int, int]] = attrs.field(factory=list)

    def push(self, packet: RtpPacket) -> list[DtmfDigit]:
        """Digits completed by this packet (usually none or one); other PTs are ignored."""
        if packet.payload_type != self.payload_type:
            return []
        try:
            event = DtmfEvent.decode(packet.payload)
        except RtpDecodeError:
            return []
        key = (packet.timestamp, event.event)
        if key in self._reported:
            return []  # the redundant end packets, or a late update
        digits: list[DtmfDigit] = []
        if self._current is not None and self._current != key:
            digits += self.flush()  # the previous event lost all its end packets
        self._current = key
        self._duration = max(self._duration, event.duration)
        if event.end:
            digits += self.flush()
        return digits

    def flush(self) -> list[DtmfDigit]:
        """Report the event in progress (if any) as finished."""
        if self._current is None:
            return []
        timestamp, event = self._current
        digit = DtmfDigit(_digit_for_event(event), self._duration, timestamp)
        self._remember(self._current)
        self._current, self._duration = None, 0
        return [digit]

    def _remember(self, key: tuple[int, int]) -> None:
        self._reported.add(key)
        self._recent.append(key)
        if len(self._recent) > 32:  # bounded memory: forget old events
            self._reported.discard(self._recent.pop(0))
