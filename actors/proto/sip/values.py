"""Structured header values: Via, name-addr (From/To/Contact/Route), CSeq and SIP URIs.

Each value is a frozen attrs class with a ``parse`` classmethod (raising only
:class:`SipParseError`) and ``__str__`` that writes it back.  Parsing is deliberately
tolerant of linear white space where RFC 3261 allows it, and strict about the parts the
transaction and dialog layers depend on (branch, tag, sequence numbers, ports).
"""

from __future__ import annotations

import re

import attrs

from .errors import SipParseError
from .headers import format_params, is_token, parse_params, quote, unquote

__all__ = ["Via", "NameAddress", "CSeq", "SipUri", "Address", "MAGIC_COOKIE", "MAX_CSEQ"]

#: A transport address as the I/O shell uses it: ``(host, port)``.
Address = tuple[str, int]

#: Branch prefix of RFC 3261 compliant transactions (sec 8.1.1.7).
MAGIC_COOKIE = "z9hG4bK"

#: CSeq numbers must be below 2**31 (RFC 3261 8.1.1.5).
MAX_CSEQ = 2**31 - 1

_HOST = r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+"
_SENT_BY_RE = re.compile(rf"({_HOST})(?:\s*:\s*([0-9]{{1,5}}))?")
_VIA_PROTO_RE = re.compile(r"\s*([^\s/]+)\s*/\s*([^\s/]+)\s*/\s*([^\s/;]+)\s+(.*)", re.S)
_CSEQ_RE = re.compile(r"\s*([0-9]{1,10})\s+(\S+)\s*")
_URI_RE = re.compile(
    rf"(sips?):(?:([^@\s]+)@)?({_HOST})(?::([0-9]{{1,5}}))?((?:;[^?\s]*)?)(?:\?(\S*))?",
    re.I,
)


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    port = int(text)
    if not 0 < port <= 65535:
        raise SipParseError(f"port out of range: {text}")
    return port


@attrs.frozen
class Via:
    """One Via entry: ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = attrs.field(factory=dict)

    @classmethod
    def parse(cls, value: str) -> "Via":
        match = _VIA_PROTO_RE.fullmatch(value)
        if match is None:
            raise SipParseError(f"bad Via: {value!r}")
        name, version, transport, rest = match.groups()
        if name.upper() != "SIP" or version != "2.0" or not is_token(transport):
            raise SipParseError(f"bad Via protocol: {value!r}")
        rest = rest.strip()
        sent_by = _SENT_BY_RE.match(rest)
        if sent_by is None:
            raise SipParseError(f"bad Via sent-by: {value!r}")
        params = parse_params(rest[sent_by.end():])
        return cls(transport.upper(), sent_by.group(1), _port(sent_by.group(2)), params)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **params: str | None) -> "Via":
        return attrs.evolve(self, params={**self.params, **params})

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{format_params(self.params)}"


@attrs.frozen
class NameAddress:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route, ...).

    ``uri`` is kept as text: not every URI is a SIP URI (``tel:``), and only the call
    layer needs to look inside it (:meth:`SipUri.parse`).  ``"*"`` is the wildcard
    Contact.
    """

    uri: str
    display_name: str | None = None
    params: dict[str, str | None] = attrs.field(factory=dict)

    @classmethod
    def parse(cls, value: str) -> "NameAddress":
        text = value.strip()
        if text == "*":
            return cls("*")
        lt = _find_unquoted(text, "<")
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError(f"missing '>' in {value!r}")
            display = text[:lt].strip()
            if display.startswith('"'):
                if len(display) < 2 or not display.endswith('"'):
                    raise SipParseError(f"bad display name in {value!r}")
                display_name: str | None = unquote(display)
            else:
                display_name = display or None
                if display and '"' in display:
                    raise SipParseError(f"bad display name in {value!r}")
            uri = text[lt + 1 : gt].strip()
            params = parse_params(text[gt + 1 :])
        else:
            # addr-spec: parameters after the URI belong to the header (RFC 3261 20.10).
            uri, semi, rest = text.partition(";")
            uri = uri.strip()
            display_name = None
            params = parse_params(semi + rest)
        if not uri or any(c.isspace() for c in uri) or ":" not in uri:
            raise SipParseError(f"bad URI in {value!r}")
        return cls(uri, display_name, params)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> "NameAddress":
        return attrs.evolve(self, params={**self.params, "tag": tag})

    def without_tag(self) -> "NameAddress":
        return attrs.evolve(self, params={k: v for k, v in self.params.items() if k != "tag"})

    def __str__(self) -> str:
        if self.uri == "*":
            return "*"
        name = f"{quote(self.display_name)} " if self.display_name else ""
        return f"{name}<{self.uri}>{format_params(self.params)}"


def _find_unquoted(text: str, char: str) -> int:
    in_quotes = escaped = False
    for i, ch in enumerate(text):
        if in_quotes:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == char:
            return i
    return -1


@attrs.frozen
class CSeq:
    """``CSeq: 4711 INVITE``: the sequence number and the method it belongs to."""

    seq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> "CSeq":
        match = _CSEQ_RE.fullmatch(value)
        if match is None or not is_token(match.group(2)):
            raise SipParseError(f"bad CSeq: {value!r}")
        seq = int(match.group(1))
        if seq > MAX_CSEQ:
            raise SipParseError(f"CSeq number too large: {seq}")
        return cls(seq, match.group(2))

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@attrs.frozen
class SipUri:
    """``sip:user@host:port;params?headers`` (RFC 3261 19.1), enough to route a request."""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = attrs.field(factory=dict)
    headers: str | None = None

    @classmethod
    def parse(cls, text: str) -> "SipUri":
        match = _URI_RE.fullmatch(text.strip())
        if match is None:
            raise SipParseError(f"not a SIP URI: {text!r}")
        scheme, user, host, port, params, headers = match.groups()
        return cls(host, user, _port(port), scheme.lower(), parse_params(params or ""), headers)

    def address(self, default_port: int = 5060) -> Address:
        """Where to send a request for this URI (IPv6 brackets removed)."""
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return (host, self.port or default_port)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        headers = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{user}{self.host}{port}{format_params(self.params)}{headers}"
