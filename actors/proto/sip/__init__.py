"""Sans-I/O SIP for telephony: messages, transactions, dialogs, digest auth, SDP, calls.

Layers, bottom up (each usable on its own, none touches sockets or clocks)::

    message.py      parse/serialise requests and responses (+ headers.py, values.py)
    sdp.py          session descriptions and G.711 offer/answer
    auth.py         digest authentication, client and verifier
    transaction.py  RFC 3261 sec 17 state machines with timers on a given ``now``
    dialog.py       dialog state and in-dialog request construction
    call.py         one call leg (UAC or UAS) on top of transactions and a dialog
    useragent.py    SipUserAgent: routes datagrams to transactions and calls

Errors: see ``errors.py`` for the tree (SipError > SipParseError, SdpParseError, ...).
"""

from .auth import DigestChallenge, DigestCredentials, DigestVerifier, VerifyResult
from .call import CallState, SipCall
from .config import SipConfig
from .dialog import SipDialog
from .errors import SdpNegotiationError, SipError, SipParseError, SipStateError
from .events import (TERMINAL_EVENTS, CallAnswered, CallCancelled, CallConfirmed, CallEnded,
                     CallFailed, CallRinging, CallTrying, CallUpdated, CallUpdateFailed,
                     IncomingCall, MalformedMessage, OptionsResult, SipEvent)
from .headers import Headers
from .message import SipMessageReader, SipRequest, SipResponse, make_response, parse_message
from .sdp import (PCMA, PCMU, TELEPHONE_EVENT, AudioSession, Codec, SdpParseError,
                  SessionDescription, audio_session, create_answer, create_offer, description_in)
from .transaction import TimerSettings
from .useragent import SipUserAgent
from .values import CSeq, NameAddress, SipUri, Via

__all__ = [
    "AudioSession", "CSeq", "CallAnswered", "CallCancelled", "CallConfirmed", "CallEnded",
    "CallFailed", "CallRinging", "CallState", "CallTrying", "CallUpdateFailed", "CallUpdated",
    "Codec", "DigestChallenge", "DigestCredentials", "DigestVerifier", "Headers",
    "IncomingCall", "MalformedMessage", "NameAddress", "OptionsResult", "PCMA", "PCMU",
    "SdpNegotiationError", "SdpParseError", "SessionDescription", "SipCall", "SipConfig",
    "SipDialog", "SipError", "SipEvent", "SipMessageReader", "SipParseError", "SipRequest",
    "SipResponse", "SipStateError", "SipUri", "SipUserAgent", "TELEPHONE_EVENT",
    "TERMINAL_EVENTS", "TimerSettings", "Via", "VerifyResult", "audio_session",
    "create_answer", "create_offer", "description_in", "make_response", "parse_message",
]
