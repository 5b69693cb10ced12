"""HTTP Digest authentication for SIP (RFC 3261 22, RFC 2617, RFC 7616, RFC 8760).

Client side: :meth:`DigestChallenge.parse` reads a ``WWW-Authenticate`` (401) or
``Proxy-Authenticate`` (407) value and :func:`authorization_header` computes the
``Authorization`` / ``Proxy-Authorization`` value for a request.
:class:`ClientAuthenticator` keeps one call's challenge and nonce count and decides when
to give up (credentials refused, unsupported challenge, too many rounds).

Server side: :class:`DigestVerifier` issues challenges and checks credentials.  Its
nonces are stateless: ``<issue time>.<HMAC(secret, issue time)>``, so any nonce it
issued can be checked without storing it, and an old one is reported as *stale* (the
client retries with the fresh nonce without asking the user again).  Time is a parameter
(``now``), as everywhere in this package.

Supported: algorithms MD5, MD5-sess, SHA-256, SHA-256-sess; qop ``auth`` or none
(RFC 2069 compatibility).  ``auth-int`` is not offered and is declined when it is the only
choice.  Nonce-count replay tracking is not done by the verifier.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Callable, Mapping

import attrs

from .errors import SipParseError
from .headers import quote, unquote

if TYPE_CHECKING:
    from .message import SipRequest, SipResponse

__all__ = [
    "ClientAuthenticator",
    "DigestChallenge",
    "DigestCredentials",
    "DigestVerifier",
    "VerifyResult",
    "authorization_header",
    "digest_response",
    "parse_auth_params",
]

_ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9\-_.]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]+)\s*(?:,|$)')


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest a=b, c="d"`` into the scheme and its (unquoted) parameters."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM_RE.match(rest, pos)
        if match is None or match.end() == pos:
            raise SipParseError(f"bad authentication parameters: {value[:80]!r}")
        params[match.group(1).lower()] = unquote(match.group(2))
        pos = match.end()
    return scheme, params


def _same(a: str, b: str) -> bool:
    """Constant-time comparison that accepts any text (compare_digest needs ASCII str)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def _hash_for(algorithm: str) -> Callable[[bytes], str]:
    base = algorithm.upper().removesuffix("-SESS")
    if base not in _ALGORITHMS:
        raise SipParseError(f"unsupported digest algorithm {algorithm!r}", status_hint=401)
    return _ALGORITHMS[base]


@attrs.frozen
class DigestChallenge:
    """A parsed ``Digest`` challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> "DigestChallenge":
        scheme, params = parse_auth_params(value)
        if scheme.lower() != "digest":
            raise SipParseError(f"not a Digest challenge: {scheme[:20]!r}", status_hint=401)
        if "realm" not in params or "nonce" not in params:
            raise SipParseError("Digest challenge without realm or nonce", status_hint=401)
        algorithm = params.get("algorithm", "MD5")
        _hash_for(algorithm)
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(params["realm"], params["nonce"], algorithm, qop, params.get("opaque"),
                   params.get("stale", "").lower() == "true")

    def to_header(self) -> str:
        parts = [f"realm={quote(self.realm)}", f"nonce={quote(self.nonce)}",
                 f"algorithm={self.algorithm}"]
        if self.qop:
            parts.append(f'qop="{",".join(self.qop)}"')
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        return "Digest " + ", ".join(parts)


@attrs.frozen
class DigestCredentials:
    """What the user agent authenticates with; ``realm=None`` answers any realm."""

    username: str
    password: str = attrs.field(repr=False)
    realm: str | None = None


def digest_response(*, algorithm: str, username: str, realm: str, password: str, method: str,
                    uri: str, nonce: str, qop: str | None = None, nc: str = "00000001",
                    cnonce: str = "") -> str:
    """The ``response`` value of RFC 7616 3.4.1 (qop ``auth``) or RFC 2069 (no qop)."""
    h = _hash_for(algorithm)
    ha1 = h(f"{username}:{realm}:{password}".encode())
    if algorithm.upper().endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    ha2 = h(f"{method}:{uri}".encode())
    if qop:
        return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())
    return h(f"{ha1}:{nonce}:{ha2}".encode())


def authorization_header(challenge: DigestChallenge, credentials: DigestCredentials, *,
                         method: str, uri: str, cnonce: str, nc: int = 1) -> str:
    """The ``Authorization`` (or ``Proxy-Authorization``) value answering ``challenge``."""
    if challenge.qop and "auth" not in challenge.qop:
        raise SipParseError("challenge offers only unsupported qop values", status_hint=401)
    qop = "auth" if challenge.qop else None
    nc_text = f"{nc:08x}"
    response = digest_response(
        algorithm=challenge.algorithm, username=credentials.username, realm=challenge.realm,
        password=credentials.password, method=method, uri=uri, nonce=challenge.nonce,
        qop=qop, nc=nc_text, cnonce=cnonce)
    parts = [f"username={quote(credentials.username)}", f"realm={quote(challenge.realm)}",
             f"nonce={quote(challenge.nonce)}", f"uri={quote(uri)}",
             f"response={quote(response)}", f"algorithm={challenge.algorithm}"]
    if qop:
        parts += [f"cnonce={quote(cnonce)}", f"qop={qop}", f"nc={nc_text}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)


class VerifyResult(enum.StrEnum):
    """Outcome of :meth:`DigestVerifier.verify`.

    ``STALE`` means the credentials were right but the nonce expired: challenge again
    with ``stale=True``.
    """

    OK = "ok"
    STALE = "stale"
    MISSING = "missing"
    BAD = "bad"


@attrs.define
class DigestVerifier:
    """Challenges requests and checks their credentials (the UAS side).

    ``passwords`` maps user names to passwords.  ``secret`` keys the nonce HMAC: give
    each server its own random secret.  Nonces older than ``nonce_lifetime`` seconds are
    stale.
    """

    realm: str
    passwords: Mapping[str, str] = attrs.field(repr=False)
    secret: bytes = attrs.field(repr=False)
    algorithm: str = "MD5"
    nonce_lifetime: float = 300.0

    def __attrs_post_init__(self) -> None:
        _hash_for(self.algorithm)

    def _sign(self, issued: str) -> str:
        mac = hmac.new(self.secret, issued.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).decode()

    def challenge(self, now: float, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        issued = f"{now:.3f}"
        nonce = f"{issued}.{self._sign(issued)}"
        return DigestChallenge(self.realm, nonce, self.algorithm, ("auth",), None, stale).to_header()

    def verify(self, authorization: str | None, *, method: str, now: float) -> VerifyResult:
        """Check an ``Authorization`` value for a request with ``method``."""
        if authorization is None:
            return VerifyResult.MISSING
        try:
            scheme, params = parse_auth_params(authorization)
        except SipParseError:
            return VerifyResult.BAD
        required = ("username", "realm", "nonce", "uri", "response")
        if scheme.lower() != "digest" or any(k not in params for k in required):
            return VerifyResult.BAD
        if params["realm"] != self.realm or params.get("algorithm", "MD5").upper() != self.algorithm.upper():
            return VerifyResult.BAD
        issued, _, signature = params["nonce"].rpartition(".")
        if not issued or not _same(signature, self._sign(issued)):
            return VerifyResult.BAD
        password = self.passwords.get(params["username"])
        qop = params.get("qop")
        if password is None or (qop is not None and qop.lower() != "auth"):
            return VerifyResult.BAD
        expected = digest_response(
            algorithm=self.algorithm, username=params["username"], realm=self.realm,
            password=password, method=method, uri=params["uri"], nonce=params["nonce"],
            qop=qop, nc=params.get("nc", ""), cnonce=params.get("cnonce", ""))
        if not _same(expected, params["response"].lower()):
            return VerifyResult.BAD
        try:
            age = now - float(issued)
        except ValueError:
            return VerifyResult.BAD
        return VerifyResult.STALE if age > self.nonce_lifetime or age < 0 else VerifyResult.OK


@attrs.define
class ClientAuthenticator:
    """The UAC's digest state for one call: the current challenge and nonce count.

    ``accept(response)`` takes a 401/407 and says whether to retry: not without
    credentials, not for another realm than the configured one, not when a challenge we
    already answered comes back without ``stale=true`` (the password is wrong), and at
    most ``max_rounds`` times.  ``authorize(request, cnonce)`` adds the header.
    """

    credentials: DigestCredentials | None = None
    max_rounds: int = 3
    _challenge: tuple[str, DigestChallenge] | None = None
    _nc: int = 0
    _rounds: int = 0

    def accept(self, response: "SipResponse") -> bool:
        creds = self.credentials
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        value = response.headers.get(header)
        if creds is None or value is None or self._rounds >= self.max_rounds:
            return False
        try:
            challenge = DigestChallenge.parse(value)
        except SipParseError:
            return False
        if creds.realm not in (None, challenge.realm) or (self._challenge and not challenge.stale):
            return False
        if challenge.qop and "auth" not in challenge.qop:
            return False
        self._rounds += 1
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        self._challenge = (name, challenge)
        self._nc = 0
        return True

    def retry(self, request: "SipRequest", response: "SipResponse", *, seq: int, via: str,
              cnonce: str) -> "SipRequest | None":
        """The request to send again after a 401/407 (new Via branch and CSeq number,
        with credentials), or ``None`` to give up."""
        if not self.accept(response):
            return None
        headers = request.headers.set("Via", via).set("CSeq", f"{seq} {request.method}")
        return self.authorize(attrs.evolve(request, headers=headers), cnonce)

    def authorize(self, request: "SipRequest", cnonce: str) -> "SipRequest":
        """``request`` with credentials for the last accepted challenge (if any)."""
        if self._challenge is None or self.credentials is None:
            return request
        name, challenge = self._challenge
        self._nc += 1
        value = authorization_header(challenge, self.credentials, method=request.method,
                                     uri=request.uri, cnonce=cnonce, nc=self._nc)
        return attrs.evolve(request, headers=request.headers.set(name, value))
