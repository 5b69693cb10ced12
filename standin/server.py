"""``EmbeddedServer``: the offline realtime-compatible server, served by hypercorn's trio worker.

::

    server = EmbeddedServer.with_generated_key()
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(server.serve)      # "http://127.0.0.1:PORT"
        ...                                               # ws URL: server.ws_url
        nursery.cancel_scope.cancel()                     # stops the server

WebRTC (``POST /v1/realtime/calls``, see ``calls.py``): the trio-asyncio loop aiortc needs is
opened by :class:`RtcHost` on the first call (``webrtc=None``), at once (``True``) or never
(``False``); live calls are in ``server.calls``; :meth:`EmbeddedServer.hangup_calls` closes them
all (a fault hook). ``demo_token=…`` enables the browser demo at ``/demo`` (``demo.py``).

Observability: ``server.connections`` (one :class:`~.ws.ConnectionRecord` each, oldest first,
at most ``record_limit`` closed ones kept), ``server.stats`` (:class:`ServerStats`, fault counters
in ``stats.faults``). Faults: ``server.faults = FaultPlan(...)`` at any time (from the trio thread).
Keys and secrets are never logged; hypercorn logs only warnings and errors, through the
``standin.hypercorn`` logger, and has no access log.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from standin.app import RealtimeApp
from standin.host import AuthResult, ServerStats
from standin.rtc_host import RtcHost, WebRtcUnavailable
from standin.keys.client_secrets import ClientSecret, ClientSecretStore
from standin.model.config import DEFAULT_MODEL
from standin.front.cors import CorsPolicy, check_origin
from standin.front.lean import serve_front
from standin.faults.limits import RateLimiter
from standin.faults.plan import FaultPlan, FaultStats
from standin.model.realtime import ModelConfig
from standin.records import DEFAULT_RECORD_BUDGET, ConnectionRecord, RecordBook

__all__ = ["AuthResult", "EmbeddedServer", "RtcHost", "ServerStats", "WebRtcUnavailable",
           "generate_api_key", "run_server"]

_hypercorn_log = logging.getLogger("standin.hypercorn")


def generate_api_key() -> str:
    return "sk-rtfleet-" + secrets.token_urlsafe(24)


@attrs.define(eq=False)
class EmbeddedServer:
    api_keys: set[str] = attrs.field(factory=set, converter=set, repr=False)
    clock: Callable[[], float] = time.time  # wall clock: secret expiry, session expires_at
    model_config: ModelConfig = attrs.field(factory=ModelConfig)
    default_model: str = DEFAULT_MODEL
    #: the models a session may name (``?model=``, a secret's or a call's session); others are
    #: refused with ``model_not_found`` as the hosted service does. None: any name
    #: (``config.KNOWN_MODELS`` is the hosted list, ``rtfleet serve``'s default)
    models: frozenset[str] | None = attrs.field(
        default=None, converter=attrs.converters.optional(frozenset))
    #: closed connection records kept: at most this many, and at most this many bytes
    #: (measured as JSON text; see ``records.py``), the oldest dropped first
    record_limit: int = 1000
    record_budget_bytes: int = DEFAULT_RECORD_BUDGET
    #: what serves HTTP and WebSocket: ``"lean"`` (h11 + websockets' sans-I/O protocol on trio,
    #: ``front.py``; several times cheaper per WebSocket message) or ``"hypercorn"``
    engine: str = attrs.field(default="lean", validator=attrs.validators.in_(("lean", "hypercorn")))
    _faults: FaultPlan = attrs.field(factory=FaultPlan, alias="faults")
    #: WebRTC: None = open a trio-asyncio loop on the first call (or use the enclosing
    #: ``open_rtc_loop()``), True = at once when serving (fails if the extra is missing),
    #: False = refuse calls (``501``)
    webrtc: bool | None = None
    #: WebRTC calls send no audio packets while the model is silent (discontinuous
    #: transmission) instead of 50 silence frames a second; False: silence is sent
    rtc_dtx: bool = True
    #: the caller token ``/v1/demo/session`` requires (header ``X-Rtfleet-Demo-Token``);
    #: None disables ``/demo`` and the key-vending endpoint
    demo_token: str | None = attrs.field(default=None, repr=False)
    #: SIP: the UDP port of the SIP user agent server on ``host`` (0 = ephemeral; None = no
    #: SIP side). See ``sip_uas.py``; once serving, ``server.sip`` is the :class:`SipUas`.
    sip_port: int | None = None
    #: where ``realtime.call.incoming`` webhooks go (None: SIP calls are accepted at once)
    webhook_url: str | None = None
    #: the ``whsec_…`` signing secret (generated when None and a webhook_url is set)
    webhook_secret: str | None = attrs.field(default=None, repr=False)
    #: seconds an announced SIP call waits for a decision before it gets 480 (None: no limit)
    sip_accept_timeout: float | None = 30.0
    #: origins browsers may call the ``/v1/realtime/…`` HTTP paths from (CORS, ``cors.py``):
    #: ``("*",)`` (any, as the hosted service answers), exact ``scheme://host[:port]``
    #: origins, or ``()`` for no CORS at all
    cors_origins: tuple[str, ...] = attrs.field(
        default=("*",), converter=tuple,
        validator=attrs.validators.deep_iterable(lambda _i, _a, o: check_origin(o)))
    #: ``POST /_rtfleet/faults`` applies one fault action through this hook (``control.py``;
    #: ``rtfleet serve`` sets it); None: the path answers 404
    fault_control: Callable[[Any], Awaitable[tuple[dict[str, Any], Any]]] | None = attrs.field(
        default=None, repr=False)
    #: headers every HTTP request and WebSocket upgrade must carry, with these values (a
    #: generic target's ``headers`` proven sent); missing or wrong: ``401``
    required_headers: dict[str, str] = attrs.field(factory=dict, repr=False)
    #: SIP calls accepted without a webhook get this session config (None: the defaults)
    sip_session: dict[str, Any] | None = None
    #: the webhook events announcing a SIP call (``realtime.call.incoming`` and/or GPT-Live's
    #: ``live.transport.incoming``; the first accept on either surface wins)
    sip_webhook_events: tuple[str, ...] = ("realtime.call.incoming",)
    sip: Any = attrs.field(default=None, init=False, repr=False)
    connections: list[ConnectionRecord] = attrs.field(factory=list, init=False)
    #: live WebRTC calls by call id (``rtc_session.CallSession``)
    calls: dict[str, Any] = attrs.field(factory=dict, init=False)
    rtc: RtcHost = attrs.field(init=False, repr=False)
    stats: ServerStats = attrs.field(factory=ServerStats, init=False)
    secrets: ClientSecretStore = attrs.field(factory=ClientSecretStore, init=False, repr=False)
    base_url: str | None = attrs.field(default=None, init=False)
    faults_changed: trio.Event = attrs.field(factory=trio.Event, init=False, repr=False)
    #: the plan's rate limits, enforced server-wide (``faults/limits.py``)
    limiter: RateLimiter = attrs.field(init=False, repr=False)
    _opened: int = attrs.field(default=0, init=False)
    _book: RecordBook = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.rtc = RtcHost(self.webrtc)
        self.limiter = RateLimiter(self.stats.faults)
        self._book = RecordBook(self.connections, self.record_budget_bytes, self.record_limit)

    @classmethod
    def with_generated_key(cls, **kwargs: Any) -> EmbeddedServer:
        """A server accepting one fresh random key (read it back with :attr:`api_key`)."""
        return cls(api_keys={generate_api_key()}, **kwargs)

    @property
    def api_key(self) -> str:
        """The standard key, when the server has exactly one."""
        if len(self.api_keys) != 1:
            raise ValueError(f"server has {len(self.api_keys)} api keys, not exactly one")
        return next(iter(self.api_keys))

    @property
    def faults(self) -> FaultPlan:
        return self._faults

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        if not isinstance(plan, FaultPlan):
            raise TypeError(f"expected a FaultPlan, got {type(plan).__name__}")
        self._faults = plan
        changed, self.faults_changed = self.faults_changed, trio.Event()
        changed.set()

    @property
    def ws_url(self) -> str:
        """``ws://HOST:PORT`` once serving (append ``/v1/realtime?model=…``)."""
        if self.base_url is None:
            raise RuntimeError("the server is not serving")
        return "ws" + self.base_url[len("http"):]

    def authenticate(self, token: str | None, *, allow_secret: bool = True) -> AuthResult:
        result = self._authenticate(token, allow_secret)
        if result.kind is None:
            self.stats.auth_failures += 1
        return result

    def _authenticate(self, token: str | None, allow_secret: bool) -> AuthResult:
        if self._faults.reject_keys:
            self.stats.faults.keys_rejected += 1
            return AuthResult(None, "Incorrect API key provided.")
        if not token:
            return AuthResult(None, "Missing API key: use 'Authorization: Bearer <key>'.")
        if token in self.api_keys:
            return AuthResult("api_key")
        if token.startswith("ek_") and allow_secret:
            secret, why = self.secrets.lookup(token, now=self.clock())
            if secret is not None:
                return AuthResult("client_secret", secret=secret)
            return AuthResult(None, f"The client secret is {why}.")
        return AuthResult(None, "Incorrect API key provided.")

    async def hangup_calls(self, reason: str = "hung up by the server") -> int:
        """Close every live WebRTC call now (a fault hook); returns how many were closed."""
        live = [call for call in self.calls.values() if call.live]
        async with trio.open_nursery() as nursery:
            for call in live:
                nursery.start_soon(call.hangup, reason)
        return len(live)

    async def drop_connections(self, percent: float = 100.0, rng: random.Random | None = None) -> int:
        """Drop ``percent`` of the live WebSocket connections and WebRTC/SIP calls now (a fault
        hook: connections as the plan's drops do, by ``drop_mode``; calls are hung up);
        returns how many."""
        live: list[Any] = [r for r in self.connections if r.drop_now is not None]
        live += [call for call in self.calls.values() if call.live]
        chosen = (rng or random.Random()).sample(live, round(len(live) * percent / 100))
        calls = []
        for target in chosen:
            if isinstance(target, ConnectionRecord):
                target.drop_now()
            else:
                calls.append(target)
        async with trio.open_nursery() as nursery:
            for call in calls:
                nursery.start_soon(call.hangup, "dropped by a fault")
        return len(chosen)

    def open_record(self, *, model: str | None, call_id: str | None, auth_kind: str | None,
                     subprotocol: str | None) -> ConnectionRecord:
        self._opened += 1
        self.stats.connections_opened += 1
        record = ConnectionRecord(
            id=f"conn_{self._opened}", index=self._opened, model=model, call_id=call_id,
            auth_kind=auth_kind, subprotocol=subprotocol, connected_at=trio.current_time(),
        )
        self._book.add(record)
        return record

    def close_record(self, record: ConnectionRecord) -> None:
        """The connection or call ended: its record is compacted and kept within the bounds."""
        book = self._book
        book.records = self.connections  # a test may have replaced the list
        book.close(record)
        stats = self.stats
        stats.record_bytes, stats.records_dropped = book.retained_bytes, book.dropped
        stats.record_bytes_dropped = book.dropped_bytes

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started(base_url)`` once listening."""
        config = Config()
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        # a reconnect storm of a whole fleet must not overflow the accept queue (default 100)
        config.backlog = 4096
        config.accesslog = None
        config.errorlog = _hypercorn_log
        config.graceful_timeout = 1.0
        config.websocket_max_message_size = 16 * 1024 * 1024
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.rtc.run)
                if self.engine == "lean":
                    self.base_url = await nursery.start(partial(
                        serve_front, self._app(), host, port, backlog=config.backlog,
                        max_message_size=config.websocket_max_message_size))
                else:
                    binds = await nursery.start(partial(hypercorn_serve, self._app(), config))
                    self.base_url = binds[0]
                if self.sip_port is not None:
                    await nursery.start(self._serve_sip, host)
                task_status.started(self.base_url)
        finally:
            self.base_url = None
            self.rtc = RtcHost(self.webrtc)  # a later serve() starts afresh

    def _app(self) -> CorsPolicy:
        return CorsPolicy(RealtimeApp(self), self.cors_origins)

    async def _serve_sip(self, host: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        from standin.sessions.sip_uas import SipUas
        from standin.keys.webhooks import WebhookSender, new_webhook_secret

        webhook = None
        if self.webhook_url is not None:
            if self.webhook_secret is None:
                self.webhook_secret = new_webhook_secret()
            webhook = WebhookSender(self.webhook_url, self.webhook_secret, clock=self.clock)
        self.sip = SipUas(self, host, self.sip_port or 0, webhook,  # kept after stopping (stats)
                          accept_timeout=self.sip_accept_timeout, auto_session=self.sip_session,
                          webhook_events=tuple(self.sip_webhook_events))
        await self.sip.run(task_status=task_status)


async def run_server(
    host: str = "127.0.0.1",
    port: int = 0,
    api_keys: Iterable[str] = (),
    faults: FaultPlan | None = None,
    *,
    webrtc: bool | None = None,
    demo_token: str | None = None,
    models: Iterable[str] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Entry point for ``rtfleet serve``: serve until cancelled; prints nothing.

    ``task_status.started(base_url)`` once listening. At least one API key is required
    (make one with :func:`generate_api_key`).
    """
    keys = set(api_keys)
    if not keys:
        raise ValueError("at least one API key is required (see generate_api_key())")
    server = EmbeddedServer(api_keys=keys, faults=faults or FaultPlan(), webrtc=webrtc,
                            demo_token=demo_token, models=models)
    await server.serve(host, port, task_status=task_status)
