"""SIP dialogs (RFC 3261 sec 12): the state two user agents share for one call.

A dialog is identified by Call-ID, local tag and remote tag.  It remembers the remote
target (the peer's Contact), the route set (from Record-Route), and both CSeq counters.
:class:`SipDialog` builds in-dialog requests (BYE, re-INVITE, OPTIONS) with the right
Request-URI, Route headers, tags and an incremented CSeq; the ACK for a 2xx, which reuses
the INVITE's CSeq number; and it checks the order of the peer's requests.

Construction:

* UAC: :meth:`SipDialog.from_uac` from the INVITE we sent and the 1xx/2xx that carried a
  To tag (route set = Record-Route reversed);
* UAS: :meth:`SipDialog.from_uas` from the INVITE received and the tag we chose (route
  set = Record-Route in order).

Loose routing (``;lr``) is the normal case; a strict-routing first hop is handled by
putting its URI in the Request-URI and the remote target at the end of the route set
(RFC 3261 12.2.1.1).
"""

from __future__ import annotations

import attrs

from .errors import SipParseError, SipStateError
from .headers import Headers
from .message import SipRequest, SipResponse
from .values import MAX_CSEQ, Address, NameAddress, SipUri

__all__ = ["SipDialog", "DialogId"]

DialogId = tuple[str, str, str]


def _contact_uri(message: SipRequest | SipResponse) -> str | None:
    contacts = message.headers.get_list("Contact")
    if not contacts:
        return None
    return NameAddress.parse(contacts[0]).uri


def _route_uris(message: SipRequest | SipResponse) -> list[str]:
    return [str(NameAddress.parse(v)) for v in message.headers.get_list("Record-Route")]


@attrs.define(eq=False)
class SipDialog:
    """The mutable dialog state (one per established or early call leg)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddress
    remote_uri: NameAddress
    remote_target: str
    route_set: list[str]
    local_seq: int
    remote_seq: int | None = None
    confirmed: bool = False

    @classmethod
    def from_uac(cls, request: SipRequest, response: SipResponse) -> "SipDialog":
        """The dialog a UAC gets from its INVITE and a response carrying a To tag."""
        remote = response.to
        if remote.tag is None:
            raise SipParseError("dialog-creating response without To tag")
        local = request.from_
        return cls(
            call_id=request.call_id,
            local_tag=local.tag or "",
            remote_tag=remote.tag,
            local_uri=local.without_tag(),
            remote_uri=remote.without_tag(),
            remote_target=_contact_uri(response) or request.uri,
            route_set=list(reversed(_route_uris(response))),
            local_seq=request.cseq.seq,
            confirmed=200 <= response.status < 300,
        )

    @classmethod
    def from_uas(cls, request: SipRequest, local_tag: str) -> "SipDialog":
        """The dialog a UAS gets when it answers ``request`` with tag ``local_tag``."""
        remote = request.from_
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag or "",
            local_uri=request.to.without_tag(),
            remote_uri=remote.without_tag(),
            remote_target=_contact_uri(request) or remote.uri,
            route_set=_route_uris(request),
            local_seq=0,
            remote_seq=request.cseq.seq,
        )

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    def _first_hop(self) -> tuple[str, list[str]]:
        """Request-URI and Route values for the next request."""
        if not self.route_set:
            return self.remote_target, []
        first = NameAddress.parse(self.route_set[0])
        if "lr" in SipUri.parse(first.uri).params:
            return self.remote_target, list(self.route_set)
        return first.uri, self.route_set[1:] + [f"<{self.remote_target}>"]

    def destination(self, default_port: int = 5060) -> Address:
        """Where to send in-dialog requests: the first route, else the remote target."""
        if self.route_set:
            return SipUri.parse(NameAddress.parse(self.route_set[0]).uri).address(default_port)
        return SipUri.parse(self.remote_target).address(default_port)

    def create_request(self, method: str, *, via: str, contact: str | None = None,
                       headers: tuple[tuple[str, str], ...] = (), body: bytes = b"",
                       cseq: int | None = None) -> SipRequest:
        """An in-dialog request; the CSeq is incremented unless ``cseq`` is given (ACK)."""
        if cseq is None:
            if self.local_seq >= MAX_CSEQ:
                raise SipStateError("CSeq space exhausted")
            self.local_seq += 1
            cseq = self.local_seq
        uri, routes = self._first_hop()
        items: list[tuple[str, str]] = [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", str(self.local_uri.with_tag(self.local_tag))),
            ("To", str(self.remote_uri.with_tag(self.remote_tag))),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        items += [("Route", r) for r in routes]
        if contact is not None and method not in ("ACK", "BYE", "CANCEL"):
            items.append(("Contact", contact))
        items += list(headers)
        return SipRequest(method, uri, Headers.of(items), body)

    def create_ack(self, invite_cseq: int, *, via: str,
                   headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> SipRequest:
        """The ACK for a 2xx: a new transaction, with the INVITE's CSeq number."""
        return self.create_request("ACK", via=via, headers=headers, body=body, cseq=invite_cseq)

    def check_remote_request(self, request: SipRequest) -> int | None:
        """Accept an in-dialog request from the peer: ``None`` if fine, else the status to
        reject it with (500 for a CSeq lower than the last one, RFC 3261 12.2.2)."""
        seq = request.cseq.seq
        if request.method in ("ACK", "CANCEL"):
            return None
        if self.remote_seq is not None and seq <= self.remote_seq:
            return 500
        self.remote_seq = seq
        return None

    def update_target(self, message: SipRequest | SipResponse) -> None:
        """A target refresh (re-INVITE or its 2xx) may carry a new Contact."""
        uri = _contact_uri(message)
        if uri is not None:
            self.remote_target = uri

    def matches(self, message: SipRequest | SipResponse, *, incoming_request: bool) -> bool:
        """True if ``message`` belongs to this dialog."""
        if message.call_id != self.call_id:
            return False
        if incoming_request:
            return message.to.tag == self.local_tag and message.from_.tag == self.remote_tag
        return message.from_.tag == self.local_tag and message.to.tag == self.remote_tag
