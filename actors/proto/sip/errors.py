"""The one exception tree of the SIP layer.

::

    SipError                      base of everything raised by actors.proto.sip
     ├── SipParseError            bytes from the peer are malformed (carries status_hint)
     │    └── SdpParseError       a malformed session description (sdp.py)
     ├── SdpNegotiationError      offer and answer share no codec (status_hint 488)
     └── SipStateError            the local side asked for something illegal in the
                                  current state (like h11's LocalProtocolError)

``SipParseError`` is a *remote* error: the peer sent something we cannot read.  Its
``status_hint`` is the response a server should answer with (400 Bad Request, 505
Version Not Supported, 513 Message Too Large, ...).  The parser raises nothing else for
any input, which the fuzz tests check.

``SipStateError`` is a *local* error: the caller of this library made a mistake (sent a
response twice, hung up a call that is already over).  It leaves the state unchanged.
"""

from __future__ import annotations

__all__ = [
    "SipError",
    "SipParseError",
    "SdpNegotiationError",
    "SipStateError",
]


class SipError(Exception):
    """Base class of every error raised by the SIP layer."""


class SipParseError(SipError):
    """Malformed SIP (or SDP) input from the peer.

    ``status_hint`` is the status code a server should send back when the malformed
    input was a request (400 unless a more precise code applies).
    """

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class SdpNegotiationError(SipError):
    """The offer cannot be answered: no codec in common (status 488 Not Acceptable Here)."""

    status_hint = 488


class SipStateError(SipError):
    """A local request that the current transaction, dialog or call state forbids."""
