"""Events a :class:`~actors.proto.sip.useragent.SipUserAgent` reports to its I/O shell.

Every call ends with exactly one *terminal* event: :class:`CallEnded`,
:class:`CallCancelled` or :class:`CallFailed` (``TERMINAL_EVENTS``), whoever ended it and
however.  So a shell can keep one task per call and stop it on the terminal event.

Remote session descriptions arrive parsed (:class:`SessionDescription`); a call answered
with a malformed one fails instead of reporting garbage.
"""

from __future__ import annotations

import attrs

from .message import SipRequest, SipResponse
from .sdp import SessionDescription
from .values import Address, NameAddress

__all__ = [
    "IncomingCall",
    "CallTrying",
    "CallRinging",
    "CallAnswered",
    "CallConfirmed",
    "CallUpdated",
    "CallUpdateFailed",
    "CallEnded",
    "CallCancelled",
    "CallFailed",
    "OptionsResult",
    "MalformedMessage",
    "SipEvent",
    "TERMINAL_EVENTS",
]


@attrs.frozen
class IncomingCall:
    """A new INVITE (UAS side).  Answer with ``ring``/``answer``/``reject``."""

    call_id: str
    caller: NameAddress
    callee: NameAddress
    remote_sdp: SessionDescription | None
    source: Address
    request: SipRequest = attrs.field(repr=False)


@attrs.frozen
class CallTrying:
    """100 Trying: the next hop has the INVITE (UAC side)."""

    call_id: str


@attrs.frozen
class CallRinging:
    """180 Ringing or 183 Session Progress; ``remote_sdp`` is set for early media."""

    call_id: str
    status: int
    remote_sdp: SessionDescription | None = None


@attrs.frozen
class CallAnswered:
    """The callee accepted (2xx); the ACK has been sent (UAC side)."""

    call_id: str
    remote_sdp: SessionDescription | None
    response: SipResponse = attrs.field(repr=False)


@attrs.frozen
class CallConfirmed:
    """Our 2xx was acknowledged (UAS side); ``remote_sdp`` is set if the ACK carried one."""

    call_id: str
    remote_sdp: SessionDescription | None = None


@attrs.frozen
class CallUpdated:
    """A re-INVITE (either direction) completed with a new remote description."""

    call_id: str
    remote_sdp: SessionDescription | None


@attrs.frozen
class CallUpdateFailed:
    """Our re-INVITE was refused (491 glare, 488, ...); the call continues."""

    call_id: str
    status: int
    reason: str


@attrs.frozen
class CallEnded:
    """The established call is over: ``by`` is "local" or "remote"."""

    call_id: str
    by: str
    reason: str = ""


@attrs.frozen
class CallCancelled:
    """The call was cancelled before it was answered: ``by`` is "local" or "remote"."""

    call_id: str
    by: str


@attrs.frozen
class CallFailed:
    """The call could not be set up (final error status, timeout, bad SDP...)."""

    call_id: str
    status: int
    reason: str


@attrs.frozen
class OptionsResult:
    """The outcome of :meth:`SipUserAgent.send_options` (status 408 on timeout)."""

    call_id: str
    status: int
    response: SipResponse | None = attrs.field(default=None, repr=False)


@attrs.frozen
class MalformedMessage:
    """A datagram we could not use; the calls are unaffected."""

    source: Address
    detail: str
    status_hint: int


SipEvent = (IncomingCall | CallTrying | CallRinging | CallAnswered | CallConfirmed | CallUpdated
            | CallUpdateFailed | CallEnded | CallCancelled | CallFailed | OptionsResult
            | MalformedMessage)

TERMINAL_EVENTS = (CallEnded, CallCancelled, CallFailed)
