"""rtfleet as the controller of incoming SIP calls: webhook -> accept -> sideband session.

::

    controller = SipController(webhook_secret="whsec_…", accept_config={"type": "realtime", …})
    url = await nursery.start(controller.serve)           # "http://127.0.0.1:PORT/" (the webhook)
    controller.attach(fleet, api_base=fleet.url, api_key=key)

For each ``realtime.call.incoming`` POSTed to its URL (served by hypercorn on 127.0.0.1):

1. the Standard Webhooks signature is verified (``webhooks.verify``, 300 s tolerance); a
   missing or forged signature or a stale timestamp is answered ``401`` and nothing else
   happens;
2. redelivered webhooks are deduplicated on ``call_id`` (answered ``200``, counted in
   ``duplicates``), as the hosted service may deliver more than once;
3. the call is accepted: ``POST {api_base}/v1/realtime/calls/{call_id}/accept`` with the
   session config (a ``404`` means the caller hung up meanwhile: counted in ``gone``);
4. the sideband WebSocket is attached as a fleet session: ``fleet.add_session(call_id=…)``
   with the ``transient`` policy (the call's end closes the session for good) and a core that
   restores without replaying the conversation (the call keeps it).

The webhook is answered as soon as it is verified; accepting happens in the background.

With ``attach_sessions=False`` step 4 is left to whoever placed the call: rtfleet's own SIP
callers (a scenario's ``transport: sip`` population) dial the service, then ask
:meth:`SipController.call_id_for` for the service's call id of their SIP ``Call-ID`` (read from
the webhook's ``sip_headers``) and attach the sideband themselves, as
``actors.sip.SipOptions(call_id=controller.call_id_for)``. It answers once the call is
accepted, and raises :class:`CallNotAccepted` when the accept failed.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import attrs
import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from actors.credentials import Secret
from actors.http import SharedHttpClient
from standin.front.responses import error_body, read_body, respond_json
from standin.keys.webhooks import DEFAULT_TOLERANCE, WebhookVerificationError, verify

__all__ = ["CallNotAccepted", "SipController"]

_log = logging.getLogger("orchestrator.sip_controller")


class CallNotAccepted(Exception):
    """The call was announced but could not be accepted (the message says why)."""


@attrs.define(eq=False)
class SipController:
    webhook_secret: str = attrs.field(repr=False)
    accept_config: dict[str, Any] = attrs.field(factory=lambda: {"type": "realtime"})
    tolerance: float = DEFAULT_TOLERANCE
    clock: Any = None  # wall clock for the timestamp check (None: time.time)
    fleet: Any = None
    api_base: str | None = None
    api_key: Secret | None = attrs.field(default=None, repr=False)
    #: call_id -> fleet session id (None while accepting, or when the accept failed)
    calls: dict[str, str | None] = attrs.field(factory=dict)
    accepted: list[str] = attrs.field(factory=list)
    gone: list[str] = attrs.field(factory=list)
    duplicates: int = 0
    refused_signatures: int = 0
    url: str | None = None
    #: set (then replaced) when a new call is announced, and when one is accepted
    call_announced: trio.Event = attrs.field(factory=trio.Event)
    call_accepted: trio.Event = attrs.field(factory=trio.Event)
    #: add a fleet session for each accepted call's sideband (False: the caller attaches it)
    attach_sessions: bool = True
    #: "realtime" answers ``realtime.call.incoming`` (``/v1/realtime/calls/{id}/accept``, a
    #: ``?call_id=`` sideband); "live" answers GPT-Live's ``live.transport.incoming``
    #: (``/v1/live/sessions/{id}/accept`` with ``{"session": live_session}``, an ``/attach``
    #: sideband speaking Live). The other surface's announcements are acknowledged and ignored.
    surface: str = attrs.field(default="realtime", validator=attrs.validators.in_(("realtime", "live")))
    live_session: dict[str, Any] = attrs.field(factory=lambda: {"model": "gpt-live-1"})
    #: SIP Call-ID -> the service's call id (accepted), or the reason the accept failed
    by_sip_call_id: dict[str, str | CallNotAccepted] = attrs.field(factory=dict)
    _resolved: dict[str, trio.Event] = attrs.field(factory=dict)
    _nursery: trio.Nursery | None = None
    #: the client every accept uses (made on the first, closed when ``serve`` ends)
    _http: SharedHttpClient = attrs.field(factory=SharedHttpClient)

    def attach(self, fleet: Any, *, api_base: str, api_key: str | Secret) -> None:
        self.fleet, self.api_base = fleet, api_base.rstrip("/")
        self.api_key = api_key if isinstance(api_key, Secret) else Secret(api_key, kind="api_key")

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        config = Config()
        config.bind = [f"{host}:{port}"]
        config.accesslog = None
        config.errorlog = _log
        config.graceful_timeout = 1.0
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                binds = await nursery.start(partial(hypercorn_serve, self._app, config))
                self.url = binds[0] + "/"
                task_status.started(self.url)
        finally:
            with trio.CancelScope(shield=True):
                await self._http.aclose()

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await respond_json(send, 405, error_body("Use POST", "method_not_allowed"))
            return
        body = await read_body(receive)
        if body is None:
            await respond_json(send, 413, error_body("Request body too large", "request_too_large"))
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            event = verify(self.webhook_secret, body, headers, tolerance=self.tolerance,
                           now=self.clock() if self.clock else None)
        except WebhookVerificationError as exc:
            self.refused_signatures += 1
            await respond_json(send, 401, error_body(str(exc), "invalid_signature"))
            return
        data = event.get("data") or {}
        if self.surface == "realtime" and event.get("type") == "realtime.call.incoming":
            call_id = data.get("call_id")
        elif self.surface == "live" and event.get("type") in ("live.transport.incoming",
                                                               "live.call.incoming"):
            call_id = data.get("session_id")
        else:
            call_id = None
        if isinstance(call_id, str):
            self._incoming(call_id, _sip_call_id(data.get("sip_headers")))
        await respond_json(send, 200, {})

    async def call_id_for(self, sip_call_id: str) -> str:
        """The service's call id of the call with this SIP Call-ID, once accepted (waits for
        its webhook); raises :class:`CallNotAccepted` if the accept failed."""
        if sip_call_id not in self.by_sip_call_id:
            await self._resolved.setdefault(sip_call_id, trio.Event()).wait()
        found = self.by_sip_call_id[sip_call_id]
        if isinstance(found, CallNotAccepted):
            raise found
        return found

    def _resolve(self, sip_call_id: str | None, outcome: str | CallNotAccepted) -> None:
        if sip_call_id is None:
            return
        self.by_sip_call_id[sip_call_id] = outcome
        waiter = self._resolved.pop(sip_call_id, None)
        if waiter is not None:
            waiter.set()

    def _incoming(self, call_id: str, sip_call_id: str | None = None) -> None:
        if call_id in self.calls:
            self.duplicates += 1
            return
        self.calls[call_id] = None
        self.call_announced.set()
        self.call_announced = trio.Event()
        assert self._nursery is not None
        self._nursery.start_soon(self._take, call_id, sip_call_id, name=f"sip-accept:{call_id}")

    async def _take(self, call_id: str, sip_call_id: str | None = None) -> None:
        if self.api_base is None or self.api_key is None or self.attach_sessions and self.fleet is None:
            _log.warning("call %s: no fleet attached; not accepted", call_id)
            return
        live = self.surface == "live"
        url = (f"{self.api_base}/v1/live/sessions/{call_id}/accept" if live
               else f"{self.api_base}/v1/realtime/calls/{call_id}/accept")
        body = {"session": self.live_session} if live else self.accept_config
        headers = {"Authorization": f"Bearer {self.api_key.reveal()}"}
        try:
            response = await self._http.get().post(url, json=body, headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            _log.warning("call %s: accept failed: %s", call_id, type(exc).__name__)
            self._resolve(sip_call_id, CallNotAccepted(f"accept failed: {type(exc).__name__}"))
            return
        if response.status_code == 404:
            self.gone.append(call_id)
            self._resolve(sip_call_id, CallNotAccepted("the caller hung up before the accept"))
            return
        if response.status_code != 200:
            _log.warning("call %s: accept answered %s", call_id, response.status_code)
            self._resolve(sip_call_id, CallNotAccepted(f"accept answered {response.status_code}"))
            return
        if self.attach_sessions:
            sid = await self.fleet.add_session(call_id=call_id, policy="transient",
                                               protocol=self.surface)
            self.calls[call_id] = sid
        self.accepted.append(call_id)
        self._resolve(sip_call_id, call_id)
        self.call_accepted.set()
        self.call_accepted = trio.Event()


def _sip_call_id(headers: Any) -> str | None:
    """The ``Call-ID`` among a webhook's ``sip_headers`` (``[{name, value}]``)."""
    if not isinstance(headers, list):
        return None
    for header in headers:
        if isinstance(header, dict) and str(header.get("name", "")).lower() in ("call-id", "i"):
            value = header.get("value")
            return value.strip() if isinstance(value, str) else None
    return None
