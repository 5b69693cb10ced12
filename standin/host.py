"""What the server's parts receive from the server: narrow interfaces, never the server's module.

The routes, sessions and call handlers of the stand-in are given the server object, but they
know it only through the small :class:`typing.Protocol` types below, each listing exactly what one
kind of handler uses. So nothing under ``standin/`` imports ``standin.server`` (which imports all
of them): the server is the composition root, and the arrows point one way.

================  ==========================================================  ====================
interface         what it offers                                              used by
================  ==========================================================  ====================
Authenticator     ``authenticate(token, allow_secret=)`` -> :class:`AuthResult`  routes, sessions
FaultSource       the live ``faults`` plan, ``faults_changed``, ``stats``,     sessions, SIP relay
                  ``limiter`` (the plan's rate limits)
SessionHost       the above + ``clock``, ``default_model``, ``model_config``,  WebSocket, WebRTC,
                  ``calls``, ``open_record(...)`` / ``close_record(record)``    SIP sessions
CallHost          SessionHost + ``rtc`` (the aiortc loop host), ``rtc_dtx``     WebRTC route
SecretHost        ``clock``, ``default_model``, ``secrets`` (the secret store)  key vending (declared
                                                                              in client_secrets.py)
DemoHost          SecretHost + ``demo_token``, ``stats``                        demo routes
SipHost           SessionHost + ``sip`` (the UAS, once serving)                 SIP call control
ControlHost       FaultSource + ``api_keys``, ``fault_control`` (the hook)      ``/_rtfleet/faults``
AppHost           all of the above                                              the ASGI routes
================  ==========================================================  ====================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio

from standin.faults.limits import RateLimiter
from standin.faults.plan import FaultPlan, FaultStats
from standin.keys.client_secrets import ClientSecret, SecretHost
from standin.model.realtime import ModelConfig
from standin.records import ConnectionRecord

if TYPE_CHECKING:
    from standin.rtc_host import RtcHost

__all__ = ["AppHost", "AuthResult", "Authenticator", "CallHost", "ControlHost", "DemoHost", "FaultSource",
           "SecretHost", "ServerStats", "SessionHost", "SipHost"]


@attrs.define
class ServerStats:
    connections_opened: int = 0
    connections_closed: int = 0
    auth_failures: int = 0
    client_secrets_minted: int = 0
    http_requests: int = 0
    client_events_received: int = 0
    events_sent: int = 0
    errors_sent: int = 0
    sessions_ended_max_length: int = 0
    calls_answered: int = 0  # WebRTC calls answered (201)
    calls_refused: int = 0  # POST /v1/realtime/calls answered with an error status
    calls_ended: int = 0
    rtc_messages_too_large: int = 0  # events larger than the peer's max-message-size
    demo_secrets_minted: int = 0
    #: closed connection records: bytes retained now, and those dropped to stay in budget
    record_bytes: int = 0
    records_dropped: int = 0
    record_bytes_dropped: int = 0
    faults: FaultStats = attrs.field(factory=FaultStats)


@attrs.frozen
class AuthResult:
    kind: str | None  # "api_key" | "client_secret" | None (refused)
    reason: str = ""  # why it was refused (never contains the key)
    secret: ClientSecret | None = None


class Authenticator(Protocol):
    def authenticate(self, token: str | None, *, allow_secret: bool = True) -> AuthResult: ...


class FaultSource(Protocol):
    stats: ServerStats
    faults_changed: trio.Event
    #: the plan's rate limits, server-wide (sessions, tokens, client-secret mints)
    limiter: RateLimiter

    @property
    def faults(self) -> FaultPlan: ...


class SessionHost(Authenticator, FaultSource, Protocol):
    clock: Callable[[], float]
    default_model: str
    #: the models sessions may use (None: any)
    models: frozenset[str] | None
    model_config: ModelConfig
    calls: dict[str, Any]

    def open_record(self, *, model: str | None, call_id: str | None, auth_kind: str | None,
                    subprotocol: str | None) -> ConnectionRecord: ...

    def close_record(self, record: ConnectionRecord) -> None: ...


class CallHost(SessionHost, Protocol):
    rtc: RtcHost
    rtc_dtx: bool


class DemoHost(SecretHost, Protocol):
    demo_token: str | None
    stats: ServerStats


class SipHost(SessionHost, Protocol):
    sip: Any


class ControlHost(FaultSource, Protocol):
    api_keys: set[str]
    #: applies one posted fault action: (answer, run-after-answer) or ``ValueError``
    fault_control: Callable[[Any], Awaitable[tuple[dict[str, Any], Any]]] | None


class AppHost(CallHost, DemoHost, SipHost, ControlHost, Protocol):
    pass
