"""User agent configuration, and the narrow interface a call uses to reach its agent.

:class:`SipConfig` says how the agent presents itself (address for Via and Contact,
address-of-record for From, User-Agent), which timers it runs, and its security: client
credentials for digest challenges, and an optional verifier that challenges incoming
INVITEs.

:class:`CallCore` is what :class:`~actors.proto.sip.call.SipCall` may ask of the
:class:`~actors.proto.sip.useragent.SipUserAgent` that owns it: fresh identifiers
(branch in a Via, tags, cnonces), a way to start client transactions and to send the
datagrams that belong to no transaction (the ACK and retransmissions of a 2xx), and a
way to report events.  Keeping it a Protocol keeps ``call.py`` free of the dispatching
code and testable with a fake core.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from .auth import DigestCredentials, DigestVerifier
from .headers import Headers
from .message import SipRequest
from .transaction import ClientInviteTransaction, ClientNonInviteTransaction, TimerSettings
from .values import Address, NameAddress

__all__ = ["SipConfig", "CallCore", "ALLOW"]

#: The methods we handle, advertised in Allow headers.
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"


@attrs.frozen
class SipConfig:
    """How a user agent presents itself and behaves.

    ``host``/``port``: our address as peers should see it (Via, Contact).
    ``domain``: host part of our address-of-record (defaults to ``host``).
    ``credentials``: answers 401/407 challenges on our requests.
    ``verifier``: when set, incoming INVITEs must carry valid digest credentials.
    ``send_trying``: send 100 Trying at once for every INVITE (RFC 3261 17.2.1).
    ``invite_timeout``: cancel an outgoing call without final answer after this many
    seconds (reported as CallFailed 408 "no answer"); ``None`` waits forever once a
    provisional response arrived.
    """

    host: str
    port: int = 5060
    user: str = "rtfleet"
    display_name: str | None = None
    domain: str | None = None
    user_agent: str = "rtfleet"
    timers: TimerSettings = TimerSettings()
    credentials: DigestCredentials | None = None
    verifier: DigestVerifier | None = None
    send_trying: bool = True
    invite_timeout: float | None = None

    @property
    def aor(self) -> str:
        """Our address-of-record, used in From."""
        return f"sip:{self.user}@{self.domain or self.host}"

    @property
    def contact(self) -> str:
        """Our Contact header value (where in-dialog requests should reach us)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"<sip:{self.user}@{host}:{self.port}>"

    def new_request(self, method: str, target: str, *, via: str, call_id: str, tag: str,
                    headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> SipRequest:
        """An out-of-dialog request from us (RFC 3261 8.1.1): CSeq 1, From with ``tag``."""
        local = NameAddress(self.aor, self.display_name, {"tag": tag})
        items = [("Via", via), ("Max-Forwards", "70"), ("From", str(local)),
                 ("To", str(NameAddress(target))), ("Call-ID", call_id), ("CSeq", f"1 {method}"),
                 ("Contact", self.contact), ("Allow", ALLOW), ("User-Agent", self.user_agent),
                 *headers]
        if body:
            items.append(("Content-Type", "application/sdp"))
        return SipRequest(method, target, Headers.of(items), body)


class CallCore(Protocol):
    """What a call needs from its user agent."""

    config: SipConfig

    def via(self) -> str:
        """A Via value for a new client transaction (fresh branch)."""

    def new_tag(self) -> str:
        """A fresh From/To tag."""

    def random_hex(self, size: int) -> str:
        """``size`` random hex digits (cnonces)."""

    def emit(self, event: object) -> None:
        """Report an event to the I/O shell."""

    def send_datagram(self, data: bytes, destination: Address) -> None:
        """Send bytes that belong to no transaction (ACK for 2xx, 2xx retransmissions)."""

    def start_client_transaction(self, request: SipRequest, destination: Address, owner: object,
                                 now: float) -> ClientInviteTransaction | ClientNonInviteTransaction:
        """Send ``request`` in a new client transaction whose events go to ``owner``."""
