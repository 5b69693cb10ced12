"""SDP (RFC 8866) parse/serialise and the offer/answer rules (RFC 3264) for G.711 calls.

Only what a telephone call needs is interpreted: origin, connection, the audio ``m=``
line with its ``rtpmap``/``fmtp``/``ptime`` and direction attributes.  Every other line
is kept in order so that a description survives a parse/serialise round trip.

Offer/answer::

    offer = create_offer("192.0.2.1", 40000)                 # PCMU, PCMA, telephone-event
    answer = create_answer(offer, "192.0.2.2", 50000)        # first codec both support
    session = audio_session(local=answer, remote=offer)      # what to send, and where

The answer carries exactly one audio codec (the first one in the offer that we support)
plus ``telephone-event`` when the offer has it, keeping the offer's payload type numbers.
An offer with nothing in common raises :class:`SdpNegotiationError` (answer 488).
"""

from __future__ import annotations

import re
from typing import Protocol

import attrs

from .errors import SdpNegotiationError, SipParseError

__all__ = [
    "SdpParseError",
    "Codec",
    "PCMU",
    "PCMA",
    "TELEPHONE_EVENT",
    "Origin",
    "MediaDescription",
    "SessionDescription",
    "AudioSession",
    "create_offer",
    "create_answer",
    "audio_session",
    "answer_direction",
    "description_in",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_LINE_RE = re.compile(r"([a-z])=(.*)")
_RTPMAP_RE = re.compile(r"([0-9]{1,3})\s+([^/\s]+)/([0-9]{1,6})(?:/([0-9]{1,2}))?")
# Grammar order of session-level lines (RFC 8866 5): extra lines are written in place.
_SESSION_ORDER = "vosiuepcbtrzka"


class SdpParseError(SipParseError):
    """A malformed session description."""


@attrs.frozen
class Codec:
    """An RTP payload format as SDP describes it (``a=rtpmap`` and ``a=fmtp``)."""

    payload_type: int
    name: str
    clock_rate: int = 8000
    channels: int = 1
    fmtp: str | None = None

    def matches(self, other: "Codec") -> bool:
        """Same format (name, clock rate, channels), whatever the payload type number."""
        return (self.name.lower(), self.clock_rate, self.channels) == (
            other.name.lower(), other.clock_rate, other.channels)

    def with_payload_type(self, payload_type: int) -> "Codec":
        return attrs.evolve(self, payload_type=payload_type)

    @property
    def rtpmap(self) -> str:
        channels = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.name}/{self.clock_rate}{channels}"


PCMU = Codec(0, "PCMU")
PCMA = Codec(8, "PCMA")
TELEPHONE_EVENT = Codec(101, "telephone-event", fmtp="0-16")
_STATIC = {0: PCMU, 8: PCMA, 3: Codec(3, "GSM"), 9: Codec(9, "G722"), 18: Codec(18, "G729")}


@attrs.frozen
class Origin:
    """``o=<username> <sess-id> <sess-version> IN IP4 <address>``."""

    session_id: str
    session_version: int
    address: str
    username: str = "-"
    nettype: str = "IN"
    addrtype: str = "IP4"

    @classmethod
    def parse(cls, value: str) -> "Origin":
        parts = value.split()
        if len(parts) != 6 or not _is_number(parts[2], 20):
            raise SdpParseError(f"bad o= line: {value[:80]!r}")
        user, sid, version, nettype, addrtype, address = parts
        return cls(sid, int(version), address, user, nettype, addrtype)

    def __str__(self) -> str:
        return (f"{self.username} {self.session_id} {self.session_version} "
                f"{self.nettype} {self.addrtype} {self.address}")


def _connection_address(value: str | None) -> str | None:
    if value is None:
        return None
    parts = value.split()
    if len(parts) != 3:
        raise SdpParseError(f"bad c= line: {value[:80]!r}")
    return parts[2].split("/")[0]


@attrs.frozen
class MediaDescription:
    """One ``m=`` section.  ``attributes`` are ``(name, value or None)`` in order."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    attributes: tuple[tuple[str, str | None], ...] = ()
    other: tuple[tuple[str, str], ...] = ()

    def attribute(self, name: str) -> str | None:
        return next((v for n, v in self.attributes if n == name), None)

    def has_attribute(self, name: str) -> bool:
        return any(n == name for n, _ in self.attributes)

    @property
    def direction(self) -> str:
        for name, _ in self.attributes:
            if name in DIRECTIONS:
                return name
        return "sendrecv"

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        if value is not None and _is_number(value.strip(), 4):
            return int(value)
        return None

    def codecs(self) -> list[Codec]:
        """The payload formats in preference order, resolved through rtpmap/fmtp."""
        rtpmaps: dict[int, Codec] = {}
        fmtps: dict[int, str] = {}
        for name, value in self.attributes:
            if name == "rtpmap" and value:
                match = _RTPMAP_RE.fullmatch(value.strip())
                if match:
                    pt, enc, rate, ch = match.groups()
                    rtpmaps[int(pt)] = Codec(int(pt), enc, int(rate), int(ch or 1))
            elif name == "fmtp" and value:
                pt_text, _, params = value.strip().partition(" ")
                if _is_number(pt_text, 3):
                    fmtps[int(pt_text)] = params.strip()
        codecs = []
        for fmt in self.formats:
            if not _is_number(fmt, 3) or int(fmt) > 127:
                continue
            pt = int(fmt)
            codec = rtpmaps.get(pt) or _STATIC.get(pt)
            if codec is not None:
                codecs.append(attrs.evolve(codec, fmtp=fmtps.get(pt, codec.fmtp if pt in _STATIC else None)))
        return codecs


@attrs.frozen
class SessionDescription:
    """A whole session description; ``other`` keeps lines we do not interpret."""

    origin: Origin
    session_name: str = "-"
    connection: str | None = None
    timing: str = "0 0"
    attributes: tuple[tuple[str, str | None], ...] = ()
    media: tuple[MediaDescription, ...] = ()
    other: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, data: bytes | str) -> "SessionDescription":
        """Parse a description; raises only :class:`SdpParseError`."""
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SdpParseError("SDP is not UTF-8") from exc
        lines = [line for line in re.split(r"\r?\n", data) if line.strip()]
        if not lines or lines[0].strip() != "v=0":
            raise SdpParseError("SDP must start with v=0")
        session: dict[str, object] = {"other": [], "attributes": []}
        media: list[dict[str, object]] = []
        for line in lines[1:]:
            match = _LINE_RE.fullmatch(line.rstrip())
            if match is None:
                raise SdpParseError(f"bad SDP line {line[:80]!r}")
            kind, value = match.groups()
            target = media[-1] if media else session
            if kind == "m":
                media.append(_parse_m_line(value))
            elif kind == "a":
                name, colon, attr_value = value.partition(":")
                attributes = target["attributes"]
                attributes.append((name, attr_value if colon else None))  # type: ignore[attr-defined]
            elif kind == "c":
                _connection_address(value)
                target["connection"] = value
            elif not media and kind in "ost" and kind not in session:
                session[kind] = value
            elif kind == "v":
                raise SdpParseError("repeated v= line")
            else:
                target["other"].append((kind, value))  # type: ignore[attr-defined]
        if "o" not in session:
            raise SdpParseError("SDP without o= line")
        return cls(
            origin=Origin.parse(str(session["o"])),
            session_name=str(session.get("s", "-")),
            connection=session.get("connection"),  # type: ignore[arg-type]
            timing=str(session.get("t", "0 0")),
            attributes=tuple(session["attributes"]),  # type: ignore[arg-type]
            media=tuple(_media_from_dict(m) for m in media),
            other=tuple(session["other"]),  # type: ignore[arg-type]
        )

    def to_bytes(self) -> bytes:
        lines = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        extra = sorted(self.other, key=lambda kv: _SESSION_ORDER.index(kv[0])
                       if kv[0] in _SESSION_ORDER else len(_SESSION_ORDER))
        before_c = [f"{k}={v}" for k, v in extra if _SESSION_ORDER.find(k) < 7]
        after_c = [f"{k}={v}" for k, v in extra if _SESSION_ORDER.find(k) >= 7]
        lines += before_c
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [line for line in after_c if line[0] == "b"]
        lines.append(f"t={self.timing}")
        lines += [line for line in after_c if line[0] != "b"]
        lines += [_attr_line(n, v) for n, v in self.attributes]
        for m in self.media:
            lines.append(f"m={m.media} {m.port} {m.proto} {' '.join(m.formats)}".rstrip())
            lines += [f"{k}={v}" for k, v in m.other if k == "i"]
            if m.connection is not None:
                lines.append(f"c={m.connection}")
            lines += [f"{k}={v}" for k, v in m.other if k != "i"]
            lines += [_attr_line(n, v) for n, v in m.attributes]
        return ("\r\n".join(lines) + "\r\n").encode()

    @property
    def audio(self) -> MediaDescription | None:
        """The first audio section that was not rejected (port 0)."""
        return next((m for m in self.media if m.media == "audio" and m.port != 0), None)

    def connection_address_for(self, media: MediaDescription) -> str | None:
        return _connection_address(media.connection or self.connection)


def _is_number(text: str, max_digits: int) -> bool:
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def _media_from_dict(m: dict[str, object]) -> MediaDescription:
    return MediaDescription(
        media=str(m["media"]), port=int(m["port"]), proto=str(m["proto"]),  # type: ignore[call-overload]
        formats=tuple(m["formats"]), connection=m.get("connection"),  # type: ignore[arg-type]
        attributes=tuple(m["attributes"]), other=tuple(m["other"]),  # type: ignore[arg-type]
    )


class _HasBody(Protocol):
    body: bytes

    @property
    def content_type(self) -> str | None: ...


def description_in(message: _HasBody) -> "SessionDescription | None":
    """The session description in a SIP message body; ``None`` if the body is empty or
    of another type.  Raises SdpParseError if it is malformed."""
    if not message.body.strip() or message.content_type not in (None, "application/sdp"):
        return None
    return SessionDescription.parse(message.body)


def _attr_line(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


def _parse_m_line(value: str) -> dict[str, object]:
    parts = value.split()
    if len(parts) < 3:
        raise SdpParseError(f"bad m= line: {value[:80]!r}")
    port_text = parts[1].split("/")[0]
    if not _is_number(port_text, 5) or int(port_text) > 65535:
        raise SdpParseError(f"bad m= port: {value[:80]!r}")
    return {"media": parts[0], "port": int(port_text), "proto": parts[2],
            "formats": tuple(parts[3:]), "attributes": [], "other": []}


def _media_section(codecs: list[Codec], port: int, ptime: int | None, direction: str,
                   ) -> MediaDescription:
    attributes: list[tuple[str, str | None]] = []
    for codec in codecs:
        attributes.append(("rtpmap", codec.rtpmap))
        if codec.fmtp:
            attributes.append(("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    if ptime:
        attributes.append(("ptime", str(ptime)))
    attributes.append((direction, None))
    return MediaDescription("audio", port, "RTP/AVP",
                            tuple(str(c.payload_type) for c in codecs), None, tuple(attributes))


def _address_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def create_offer(address: str, port: int, *, codecs: tuple[Codec, ...] = (PCMU, PCMA, TELEPHONE_EVENT),
                 ptime: int | None = 20, direction: str = "sendrecv", session_id: str = "0",
                 session_version: int = 0, username: str = "rtfleet") -> SessionDescription:
    """An audio offer listing ``codecs`` in preference order."""
    if direction not in DIRECTIONS:
        raise ValueError(f"bad direction {direction!r}")
    addrtype = _address_type(address)
    return SessionDescription(
        origin=Origin(session_id, session_version, address, username, "IN", addrtype),
        connection=f"IN {addrtype} {address}",
        media=(_media_section(list(codecs), port, ptime, direction),),
    )


def answer_direction(offered: str, preferred: str = "sendrecv") -> str:
    """The direction to answer with (RFC 3264 6.1), given our preference."""
    wants_send = preferred in ("sendrecv", "sendonly") and offered in ("sendrecv", "recvonly")
    wants_recv = preferred in ("sendrecv", "recvonly") and offered in ("sendrecv", "sendonly")
    return {(True, True): "sendrecv", (True, False): "sendonly",
            (False, True): "recvonly", (False, False): "inactive"}[(wants_send, wants_recv)]


def create_answer(offer: SessionDescription, address: str, port: int, *,
                  codecs: tuple[Codec, ...] = (PCMU, PCMA), dtmf: bool = True,
                  ptime: int | None = 20, direction: str = "sendrecv", session_id: str = "0",
                  session_version: int = 0, username: str = "rtfleet") -> SessionDescription:
    """Answer ``offer``: the first offered codec that we support, plus telephone-event.

    Every offered ``m=`` line gets an answer line, as RFC 3264 requires; all but the first
    usable audio line are rejected with port 0.
    """
    sections: list[MediaDescription] = []
    accepted = False
    for offered in offer.media:
        chosen: list[Codec] = []
        if offered.media == "audio" and offered.port != 0 and not accepted:
            offered_codecs = offered.codecs()
            audio = next((c for c in offered_codecs if c.name.lower() != "telephone-event"
                          and any(c.matches(ours) for ours in codecs)), None)
            if audio is not None:
                chosen.append(audio)
                event = next((c for c in offered_codecs if c.name.lower() == "telephone-event"
                              and c.clock_rate == audio.clock_rate), None)
                if dtmf and event is not None:
                    chosen.append(event)
        if chosen:
            accepted = True
            sections.append(_media_section(chosen, port, ptime,
                                           answer_direction(offered.direction, direction)))
        else:
            sections.append(MediaDescription(offered.media, 0, offered.proto, offered.formats))
    if not accepted:
        raise SdpNegotiationError("no common audio codec in the offer")
    addrtype = _address_type(address)
    return SessionDescription(
        origin=Origin(session_id, session_version, address, username, "IN", addrtype),
        connection=f"IN {addrtype} {address}",
        media=tuple(sections),
    )


@attrs.frozen
class AudioSession:
    """What the media layer needs once offer and answer are known."""

    remote_address: tuple[str, int]
    codec: Codec
    dtmf: Codec | None
    ptime: int
    direction: str


def audio_session(local: SessionDescription, remote: SessionDescription) -> AudioSession:
    """The negotiated audio stream: the first codec in ``remote`` that ``local`` also has.

    Works on either side of the exchange (local offer + remote answer, or local answer +
    remote offer).  Payload type numbers are the remote's: those are the ones it expects.
    """
    ours, theirs = local.audio, remote.audio
    if ours is None or theirs is None:
        raise SdpNegotiationError("no active audio stream")
    local_codecs = ours.codecs()
    remote_codecs = theirs.codecs()
    codec = next((c for c in remote_codecs if c.name.lower() != "telephone-event"
                  and any(c.matches(o) for o in local_codecs)), None)
    if codec is None:
        raise SdpNegotiationError("no common audio codec")
    dtmf = next((c for c in remote_codecs if c.name.lower() == "telephone-event"
                 and any(c.matches(o) for o in local_codecs)), None)
    host = remote.connection_address_for(theirs)
    if host is None:
        raise SdpParseError("no connection address for the audio stream")
    return AudioSession((host, theirs.port), codec, dtmf, theirs.ptime or 20, ours.direction)
