"""SIP header names and the header list of a message.

A SIP message carries an ordered list of header fields.  Names are case-insensitive and
many have a one-letter compact form (RFC 3261 sec 7.3.3, plus later RFCs): ``v`` is
``Via``, ``i`` is ``Call-ID`` and so on.  :func:`canonical_name` maps any spelling to one
canonical form, so ``Headers`` looks names up in a single way and serialises known
headers in their usual spelling.

Some headers may hold several comma-separated values in one line (``Via``, ``Route``,
``Contact``, ...), which is equivalent to repeating the header.  :meth:`Headers.get_list`
gives the values in order across both forms; :func:`split_commas` does the splitting
while respecting quoted strings and ``<...>`` brackets.

The small grammar helpers here (tokens, quoted strings, ``;name=value`` parameters) are
shared by the structured header values in ``values.py``.  Everything malformed raises
:class:`SipParseError`.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator

import attrs

from .errors import SipParseError

__all__ = [
    "COMPACT_FORMS",
    "MULTI_VALUE_HEADERS",
    "canonical_name",
    "Headers",
    "split_commas",
    "parse_params",
    "format_params",
    "quote",
    "unquote",
    "is_token",
]

#: One-letter forms (RFC 3261 7.3.3, RFC 3265, 3515, 3841, 3892, 4028, 4474).
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
    "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date",
    "Error-Info", "Expires", "From", "In-Reply-To", "Max-Forwards", "MIME-Version",
    "Min-Expires", "Organization", "Priority", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Require", "Record-Route", "Reply-To", "Require", "Retry-After", "Route", "Server",
    "Subject", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate", "RSeq", "RAck", "P-Asserted-Identity", "Privacy", "Reason",
    *COMPACT_FORMS.values(),
]
_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN}
_CANONICAL.update(COMPACT_FORMS)

#: Headers whose comma-separated values are separate entries (RFC 3261 7.3.1).  Headers
#: such as WWW-Authenticate contain commas inside one value and are not split.
MULTI_VALUE_HEADERS = frozenset(
    name.lower()
    for name in (
        "Via", "Route", "Record-Route", "Contact", "Allow", "Supported", "Require",
        "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
        "Content-Encoding", "Allow-Events", "In-Reply-To", "Alert-Info", "Call-Info",
        "Error-Info", "Reply-To", "Warning", "P-Asserted-Identity",
    )
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def is_token(text: str) -> bool:
    """True if ``text`` is a non-empty RFC 3261 token."""
    return _TOKEN_RE.fullmatch(text) is not None


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (compact forms expanded).

    Unknown names keep the spelling they were given: they compare case-insensitively
    through :class:`Headers` anyway.
    """
    name = name.strip()
    return _CANONICAL.get(name.lower(), name)


def _key(name: str) -> str:
    return canonical_name(name).lower()


@attrs.frozen
class Headers:
    """An immutable, ordered list of ``(name, value)`` header fields.

    Lookups are case-insensitive and understand compact forms.  The "mutating" methods
    return a new ``Headers``.
    """

    items: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> "Headers":
        """Build from pairs, canonicalising the names."""
        return cls(tuple((canonical_name(n), str(v)) for n, v in pairs))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(_key(n) == _key(name) for n, _ in self.items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first header called ``name``, or ``default``."""
        key = _key(name)
        for n, v in self.items:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """The raw values of every header called ``name``, in order."""
        key = _key(name)
        return [v for n, v in self.items if n.lower() == key]

    def get_list(self, name: str) -> list[str]:
        """Every value of a multi-value header, splitting comma-joined lines."""
        values: list[str] = []
        for raw in self.get_all(name):
            values.extend(split_commas(raw))
        return values

    def add(self, name: str, value: str) -> "Headers":
        """Append a header."""
        return Headers(self.items + ((canonical_name(name), value),))

    def prepend(self, name: str, value: str) -> "Headers":
        """Insert a header before the first one of the same name (or first of all)."""
        key = _key(name)
        items = list(self.items)
        index = next((i for i, (n, _) in enumerate(items) if n.lower() == key), 0)
        items.insert(index, (canonical_name(name), value))
        return Headers(tuple(items))

    def set(self, name: str, value: str) -> "Headers":
        """Replace all headers called ``name`` by one, at the first one's position."""
        key = _key(name)
        items: list[tuple[str, str]] = []
        placed = False
        for n, v in self.items:
            if n.lower() == key:
                if not placed:
                    items.append((canonical_name(name), value))
                    placed = True
            else:
                items.append((n, v))
        if not placed:
            items.append((canonical_name(name), value))
        return Headers(tuple(items))

    def remove(self, name: str) -> "Headers":
        """Drop every header called ``name``."""
        key = _key(name)
        return Headers(tuple((n, v) for n, v in self.items if n.lower() != key))


def split_commas(value: str) -> list[str]:
    """Split a header value at commas outside quoted strings and angle brackets.

    Empty elements are dropped.  Unbalanced quotes or brackets raise SipParseError.
    """
    if "," not in value:
        stripped = value.strip()
        if '"' not in value and "<" not in value:
            return [stripped] if stripped else []
    parts: list[str] = []
    start = 0
    in_quotes = escaped = False
    depth = 0
    for i, ch in enumerate(value):
        if in_quotes:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            if depth == 0:
                raise SipParseError(f"unbalanced '>' in {value!r}")
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
    if in_quotes or depth:
        raise SipParseError(f"unbalanced quotes or brackets in {value!r}")
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    start = 0
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
        elif ch == sep:
            parts.append(text[start:i])
            start = i + 1
    if in_quotes:
        raise SipParseError(f"unterminated quoted string in {text!r}")
    parts.append(text[start:])
    return parts


_PARAM_VALUE_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s";,]+')


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` into an ordered dict (names lower-cased).

    Values are kept as written (a quoted value keeps its quotes) so that serialising
    gives back the same text; use :func:`unquote` to read a quoted value.
    """
    params: dict[str, str | None] = {}
    text = text.strip()
    if not text:
        return params
    if not text.startswith(";"):
        raise SipParseError(f"expected ';' before parameters in {text!r}")
    for item in _split_outside_quotes(text[1:], ";"):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not is_token(name):
            raise SipParseError(f"bad parameter name {name!r}")
        if eq:
            value = value.strip()
            if _PARAM_VALUE_RE.fullmatch(value) is None:
                raise SipParseError(f"bad value for parameter {name!r}: {value!r}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def format_params(params: dict[str, str | None]) -> str:
    """Serialise parameters as ``;name=value;flag``."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def quote(text: str) -> str:
    """A quoted-string for ``text`` (backslash-escaping quotes and backslashes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(text: str) -> str:
    """The content of a quoted-string; unquoted text is returned stripped."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S)
    return text
