"""SIP messages: parsing and serialising requests and responses (RFC 3261 sec 7, 18.3).

Two ways in, one way out:

* :func:`parse_message` reads one UDP datagram.  The body is ``Content-Length`` bytes
  when the header is present, otherwise the rest of the datagram.
* :class:`SipMessageReader` frames messages on a byte stream (TCP/TLS) in the h11 manner:
  ``receive_data(bytes)`` then ``next_message()`` until it returns ``None``.  Over a
  stream ``Content-Length`` is required.
* ``message.to_bytes()`` writes a message, always with a correct ``Content-Length``.

The parser accepts header folding (continuation lines), compact names, LF-only line ends,
and leading CRLFs (keep-alives), and it checks the headers every later layer relies on
(Via, From, To, Call-ID, CSeq) so that reading them afterwards cannot fail.  Whatever the
input, it raises only :class:`SipParseError`, whose ``status_hint`` says how a server
should answer.
"""

from __future__ import annotations

import re
from typing import Union

import attrs

from .errors import SipParseError
from .headers import Headers, canonical_name, is_token
from .values import CSeq, NameAddress, Via

__all__ = [
    "SipRequest",
    "SipResponse",
    "SipMessage",
    "parse_message",
    "SipMessageReader",
    "make_response",
    "REASON_PHRASES",
]

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    415: "Unsupported Media Type", 420: "Bad Extension", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

#: Limits that keep a hostile peer from making us buffer without bound.
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024

_REQUEST_LINE_RE = re.compile(r"([^\s]+) ([^\s]+) ([^\s]+)")
_STATUS_LINE_RE = re.compile(r"([^\s]+) ([0-9]{3})(?: (.*))?")
_HEAD_END_RE = re.compile(rb"\r?\n\r?\n")
_LINE_RE = re.compile(r"\r?\n")
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS_RE = re.compile(r"[0-9]{1,9}")
_URI_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:\S+")
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")


class _MessageViews:
    """Typed views of the headers every message carries (validated by the parser)."""

    __slots__ = ()
    headers: Headers
    body: bytes

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def from_(self) -> NameAddress:
        return NameAddress.parse(self._required("From"))

    @property
    def to(self) -> NameAddress:
        return NameAddress.parse(self._required("To"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_list("Via")]

    @property
    def via(self) -> Via:
        """The top Via (the one that identifies the transaction)."""
        vias = self.headers.get_list("Via")
        if not vias:
            raise SipParseError("missing Via header")
        return Via.parse(vias[0])

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return None if value is None else value.split(";")[0].strip().lower()

    def _head_lines(self) -> list[str]:
        lines = [f"{name}: {value}" for name, value in self.headers.items if
                 name.lower() != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return lines


@attrs.frozen
class SipRequest(_MessageViews):
    """A request: ``INVITE sip:bob@example.com SIP/2.0`` plus headers and body."""

    method: str
    uri: str
    headers: Headers = Headers()
    body: bytes = b""

    def to_bytes(self) -> bytes:
        head = "\r\n".join([f"{self.method} {self.uri} SIP/2.0", *self._head_lines()])
        return head.encode() + b"\r\n\r\n" + self.body

    __bytes__ = to_bytes


@attrs.frozen
class SipResponse(_MessageViews):
    """A response: ``SIP/2.0 180 Ringing`` plus headers and body."""

    status: int
    reason: str
    headers: Headers = Headers()
    body: bytes = b""

    def to_bytes(self) -> bytes:
        head = "\r\n".join([f"SIP/2.0 {self.status} {self.reason}", *self._head_lines()])
        return head.encode() + b"\r\n\r\n" + self.body

    __bytes__ = to_bytes


SipMessage = Union[SipRequest, SipResponse]


def _decode_head(head: bytes) -> list[str]:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"header section is not UTF-8: {exc}") from exc
    return _LINE_RE.split(text)


def _parse_head(head: bytes) -> tuple[tuple[str, ...], Headers]:
    """Start line fields and headers from the header section (without the blank line)."""
    lines = _decode_head(head)
    start = lines[0]
    if _CTL_RE.search(start):
        raise SipParseError("control character in start line")
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if _CTL_RE.search(line):
            raise SipParseError("control character in header")
        if line[:1] in (" ", "\t"):
            if not fields:
                raise SipParseError("continuation line before any header")
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise SipParseError(f"malformed header line {line[:80]!r}")
        fields.append((canonical_name(name), value.strip()))
    return _parse_start_line(start), Headers(tuple(fields))


def _parse_start_line(line: str) -> tuple[str, ...]:
    if line[:8].upper() == "SIP/2.0 ":
        match = _STATUS_LINE_RE.fullmatch(line)
        if match is None:
            raise SipParseError(f"bad status line {line[:80]!r}")
        code = int(match.group(2))
        if not 100 <= code <= 699:
            raise SipParseError(f"status code out of range: {code}")
        return ("response", str(code), (match.group(3) or "").strip())
    match = _REQUEST_LINE_RE.fullmatch(line)
    if match is None:
        if line[:4].upper() == "SIP/":
            raise SipParseError(f"unsupported version in {line[:80]!r}", status_hint=505)
        raise SipParseError(f"bad request line {line[:80]!r}")
    method, uri, version = match.groups()
    if version.upper() != "SIP/2.0":
        raise SipParseError(f"unsupported version {version[:20]!r}", status_hint=505)
    if not is_token(method) or _URI_SCHEME_RE.fullmatch(uri) is None:
        raise SipParseError(f"bad request line {line[:80]!r}")
    return ("request", method, uri)


def _content_length(headers: Headers) -> int | None:
    values = {v.strip() for v in headers.get_all("Content-Length")}
    if not values:
        return None
    if len(values) > 1:
        raise SipParseError("conflicting Content-Length headers")
    value = values.pop()
    if _DIGITS_RE.fullmatch(value) is None:
        raise SipParseError(f"bad Content-Length: {value[:20]!r}")
    length = int(value)
    if length > MAX_BODY_BYTES:
        raise SipParseError("body too large", status_hint=513)
    return length


def _build(start: tuple[str, ...], headers: Headers, body: bytes) -> SipMessage:
    message: SipMessage
    if start[0] == "response":
        message = SipResponse(int(start[1]), start[2], headers, body)
    else:
        message = SipRequest(start[1], start[2], headers, body)
    for name in _REQUIRED:
        if name not in headers:
            raise SipParseError(f"missing {name} header")
    # Touch every structured view once so that later reads cannot fail.
    if not message.vias:
        raise SipParseError("empty Via header")
    _ = (message.from_, message.to)
    cseq = message.cseq
    if not message.call_id:
        raise SipParseError("empty Call-ID")
    if isinstance(message, SipRequest) and cseq.method != message.method:
        raise SipParseError("CSeq method does not match the request method")
    return message


def _strip_leading_crlf(data: bytes) -> bytes:
    return data.lstrip(b"\r\n")


def parse_message(data: bytes, *, stream: bool = False) -> SipMessage:
    """Parse one complete message (a UDP datagram, or exactly one framed message).

    With ``stream=True`` a missing ``Content-Length`` is an error, as RFC 3261 18.3
    requires for stream transports.
    """
    data = _strip_leading_crlf(bytes(data))
    if not data:
        raise SipParseError("empty message")
    end = _HEAD_END_RE.search(data)
    if end is None:
        # A message without body may end right after its last header line.
        if data.endswith(b"\n"):
            head, rest = data.rstrip(b"\r\n"), b""
        else:
            raise SipParseError("header section not terminated")
    else:
        head, rest = data[: end.start()], data[end.end() :]
    if len(head) > MAX_HEAD_BYTES:
        raise SipParseError("header section too large", status_hint=513)
    start, headers = _parse_head(head)
    length = _content_length(headers)
    if length is None:
        if stream:
            raise SipParseError("Content-Length is required over a stream")
        body = rest
    elif length > len(rest):
        raise SipParseError("body shorter than Content-Length")
    else:
        body = rest[:length]
    return _build(start, headers, body)


class SipMessageReader:
    """Frames SIP messages on a byte stream (TCP or TLS).

    ``receive_data(b"")`` marks the end of the stream; a partial message left in the
    buffer then raises.  After a parse error the reader stays broken, as in h11: the
    stream cannot be resynchronised.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False
        self._error: SipParseError | None = None

    def receive_data(self, data: bytes) -> None:
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_message(self) -> SipMessage | None:
        """The next complete message, or ``None`` if more data is needed."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except SipParseError as exc:
            self._error = exc
            raise

    def _next(self) -> SipMessage | None:
        stripped = self._buffer.lstrip(b"\r\n")
        if len(stripped) != len(self._buffer):
            del self._buffer[: len(self._buffer) - len(stripped)]
        end = _HEAD_END_RE.search(self._buffer)
        if end is None:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise SipParseError("header section too large", status_hint=513)
            if self._eof and self._buffer:
                raise SipParseError("stream ended inside a message")
            return None
        if end.start() > MAX_HEAD_BYTES:
            raise SipParseError("header section too large", status_hint=513)
        start, headers = _parse_head(bytes(self._buffer[: end.start()]))
        length = _content_length(headers)
        if length is None:
            raise SipParseError("Content-Length is required over a stream")
        total = end.end() + length
        if len(self._buffer) < total:
            if self._eof:
                raise SipParseError("stream ended inside a message body")
            return None
        body = bytes(self._buffer[end.end() : total])
        del self._buffer[:total]
        return _build(start, headers, body)


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> SipResponse:
    """A response to ``request`` per RFC 3261 8.2.6: Via, From, To, Call-ID and CSeq
    copied, ``to_tag`` added to To when it has none (and the status is not 100)."""
    to_value = request.headers.get("To") or ""
    if to_tag is not None and status != 100:
        to = request.to
        if to.tag is None:
            to_value = str(to.with_tag(to_tag))
    items: list[tuple[str, str]] = [("Via", v) for v in request.headers.get_all("Via")]
    items += [
        ("From", request.headers.get("From") or ""),
        ("To", to_value),
        ("Call-ID", request.call_id),
        ("CSeq", request.headers.get("CSeq") or ""),
    ]
    if status == 100 and "Timestamp" in request.headers:
        items.append(("Timestamp", request.headers.get("Timestamp") or ""))
    items += list(headers)
    phrase = reason if reason is not None else REASON_PHRASES.get(status, "Unknown")
    return SipResponse(status, phrase, Headers.of(items), body)
