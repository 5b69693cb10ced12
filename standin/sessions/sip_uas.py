"""The embedded server's SIP side: a UDP user agent server that behaves like the hosted one.

::

    INVITE ──> 100 Trying, 180 Ringing ──> webhook realtime.call.incoming (signed, see webhooks.py)
                                          POST /v1/realtime/calls/{id}/accept  (call_control.py)
           <── 200 OK + SDP answer (PCMU/PCMA, telephone-event) ──> ACK ──> RTP both ways
                                          /v1/realtime?call_id={id}  (the sideband WebSocket)

One task owns the UDP socket and drives the sans-I/O :class:`~actors.proto.sip.SipUserAgent`
(datagrams in and out, one timer). Each INVITE becomes a pending :class:`IncomingSipCall`
with an API id ``rtc_…``; it is announced to ``webhook_url`` when one is configured, else
accepted at once with the default session (so ``sipp`` alone can call in). The controller
then accepts (the body is the session config), rejects (``status_code``, default 603),
refers (a pending call gets ``302 Moved Temporarily`` with ``Contact: <target_uri>``; a live
one an in-dialog REFER) or hangs up (603 for a pending call, BYE for a live one).
A call nobody decides on within ``accept_timeout`` (30 s by default, counted from the
INVITE) is answered ``480 Temporarily Unavailable``, as for a callee that does not pick up:
the application was reached (the webhook was delivered) but did not answer, which is what
480 says (RFC 3261 21.4.18); ``408 Request Timeout`` would tell the caller that the request
itself could not be routed in time, and the caller would not retry a 408 the way a 480 (with
its "try later" meaning) invites. The same 480 answers a call whose webhook could not be
delivered. A decision after that is ``404`` (the call is gone).
An accepted call runs as a :class:`~.sip_call.SipMediaCall` in ``server.calls`` until a BYE
either way. A caller who hangs up (CANCEL) before the accept makes the accept ``404``.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs
import trio

from actors.proto.sip import (CallCancelled, CallConfirmed, CallEnded, CallFailed, IncomingCall,
                              MalformedMessage, SdpNegotiationError, SipConfig, SipError,
                              SipUserAgent, audio_session, create_answer)

from actors.sip_shell import SipAgentShell, udp_socket

from standin.model.events import ClientError, IdFactory
from standin.model.live import LIVE_MODELS, LiveSession
from standin.model.realtime import RealtimeSession
from standin.sessions.sip_call import SipMediaCall
from standin.keys.webhooks import WebhookSender, call_incoming_event

if TYPE_CHECKING:
    from standin.host import SessionHost

_log = logging.getLogger("standin.sip")

__all__ = ["CallControlError", "IncomingSipCall", "SipStats", "SipUas"]


class CallControlError(Exception):
    """A call-control request that cannot be honoured: ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


@attrs.define
class SipStats:
    invites: int = 0
    webhooks_sent: int = 0
    webhook_failures: int = 0
    accepted: int = 0
    rejected: int = 0
    referred: int = 0
    cancelled_before_accept: int = 0
    accept_timeouts: int = 0
    calls_ended: int = 0
    malformed: int = 0
    rtp_received: int = 0
    rtp_sent: int = 0
    sidebands_attached: int = 0
    #: sidebands closed by a drop fault (their calls went on)
    sidebands_dropped: int = 0


@attrs.define(eq=False)
class IncomingSipCall:
    """A call between its INVITE and the controller's decision."""

    call_id: str
    invite: IncomingCall
    #: the same pending call's id on the GPT-Live surface (``live_…``, ``live.transport.incoming``)
    live_id: str = attrs.field(factory=lambda: "live_" + secrets.token_hex(12))
    state: str = "pending"  # pending | accepted | rejected | gone
    media: SipMediaCall | None = None
    decided: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class SipUas(SipAgentShell):
    server: SessionHost
    host: str = "127.0.0.1"
    port: int = 0
    webhook: WebhookSender | None = None
    #: seconds an announced call may wait for accept/reject/refer/hangup before it is answered
    #: ``480 Temporarily Unavailable`` (None: wait for ever, or until the caller gives up)
    accept_timeout: float | None = 30.0
    #: the session config calls get when accepted without a webhook (None: the defaults)
    auto_session: dict[str, Any] | None = None
    #: the webhook events announcing a call: ``realtime.call.incoming`` (its ``rtc_`` id) and/or
    #: ``live.transport.incoming`` (its ``live_`` id); the first accept on either surface wins
    webhook_events: tuple[str, ...] = ("realtime.call.incoming",)
    #: ``rtc_…`` id -> call, for pending calls and accepted ones until they end
    calls: dict[str, IncomingSipCall] = attrs.field(factory=dict)
    stats: SipStats = attrs.field(factory=SipStats)
    #: the last ``history`` calls that ended (for tests and reports)
    finished: deque[SipMediaCall] = attrs.field(factory=lambda: deque(maxlen=1000))
    ua: SipUserAgent | None = None
    _by_sip_id: dict[str, IncomingSipCall] = attrs.field(factory=dict)
    #: ``live_…`` id -> call (the Live surface's name for the same calls)
    calls_by_live_id: dict[str, IncomingSipCall] = attrs.field(factory=dict)
    _sock: Any = None
    _nursery: trio.Nursery | None = None
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _ids: IdFactory = attrs.field(factory=IdFactory)

    # -- the socket loop ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._serve(self.host, self.port, lambda port: SipConfig(
                host=self.host, port=port, user="openai", user_agent="rtfleet-embedded"), task_status)
        finally:
            if self.webhook is not None:  # its deliveries ran in _serve's nursery: all ended
                with trio.CancelScope(shield=True):
                    await self.webhook.aclose()

    @property
    def nursery(self) -> trio.Nursery | None:
        """Where calls run while serving (None before and after)."""
        return self._nursery

    def _stop_calls(self) -> None:
        for call in list(self.calls.values()):
            if call.media is not None:
                call.media.end("server stopped")

    def _on_event(self, event: object) -> None:
        if isinstance(event, IncomingCall):
            self._incoming(event)
        elif isinstance(event, (CallEnded, CallCancelled, CallFailed)):
            call = self._by_sip_id.pop(event.call_id, None)
            if call is None:
                return
            if call.media is not None:
                call.media.end(_describe(event))
            elif call.state == "pending":
                self.stats.cancelled_before_accept += 1
            if call.state == "pending":
                call.state = "gone"
            call.decided.set()
            self.calls.pop(call.call_id, None)
            self.calls_by_live_id.pop(call.live_id, None)
        elif isinstance(event, CallConfirmed):
            pass  # media already runs from the 200 OK
        elif isinstance(event, MalformedMessage):
            self.stats.malformed += 1

    def _incoming(self, event: IncomingCall) -> None:
        assert self.ua is not None and self._nursery is not None
        self.stats.invites += 1
        call = IncomingSipCall("rtc_" + secrets.token_hex(12), event)
        self.calls[call.call_id] = call
        self.calls_by_live_id[call.live_id] = call
        self._by_sip_id[event.call_id] = call
        self.ua.ring(event.call_id, trio.current_time())
        if self.webhook is None:
            self._nursery.start_soon(self._auto_accept, call)
        else:
            self._nursery.start_soon(self._announce, call)
            if self.accept_timeout is not None:
                self._nursery.start_soon(self._expire_undecided, call, self.accept_timeout)

    async def _auto_accept(self, call: IncomingSipCall) -> None:
        try:
            self.accept(call.call_id, self.auto_session)
        except CallControlError as exc:  # a config the server was started with: say so
            _log.warning("SIP call %s not accepted: %s", call.call_id, exc.message)
            if call.state == "pending":
                self._decline(call, 500, "Server Internal Error")

    async def _announce(self, call: IncomingSipCall) -> None:
        assert self.webhook is not None
        request = call.invite.request
        sip_headers = [{"name": name, "value": value} for name, value in request.headers
                       if name in ("From", "To", "Call-ID", "Contact", "User-Agent")]
        delivered = False
        for kind in self.webhook_events:
            event = call_incoming_event(self._ids.new("evt"), call.call_id, sip_headers,
                                        int(self.server.clock()), kind=kind, live_id=call.live_id)
            if await self.webhook.deliver(event):
                self.stats.webhooks_sent += 1
                delivered = True
            else:
                self.stats.webhook_failures += 1
        if not delivered and call.state == "pending":  # nobody to decide: refuse like an unreachable app
            self._decline(call, 480, "webhook delivery failed")

    async def _expire_undecided(self, call: IncomingSipCall, timeout: float) -> None:
        """Nobody accepted, rejected, referred or hung up in time: the caller hears 480."""
        with trio.move_on_after(timeout):
            await call.decided.wait()
            return
        if call.state == "pending":
            self.stats.accept_timeouts += 1
            self._decline(call, 480, "Temporarily Unavailable")

    # -- call control (called by call_control.py) ---------------------------------------------

    def _pending(self, call_id: str) -> IncomingSipCall:
        call = self.calls.get(call_id)
        if call is None or call.state == "gone":
            raise CallControlError(404, f"No call with id '{call_id}' (the caller may have hung up).",
                                   "call_not_found", "call_id")
        if call.state != "pending":
            raise CallControlError(409, f"Call '{call_id}' is already {call.state}.",
                                   "call_already_decided", "call_id")
        return call

    def call_id_of(self, live_id: str) -> str:
        """The ``rtc_`` id of the call the Live surface names ``live_id`` (404 if none)."""
        call = self.calls_by_live_id.get(live_id)
        if call is None:
            raise CallControlError(404, f"No session with id '{live_id}'.", "session_not_found",
                                   "session_id")
        return call.call_id

    def accept(self, call_id: str, config: dict[str, Any] | None) -> SipMediaCall:
        """Answer a pending call with a session made from ``config`` (raises CallControlError)."""
        call = self._pending(call_id)
        server = self.server
        if config is not None and config.get("type") != "realtime":
            raise CallControlError(400, "session.type must be 'realtime'.", "invalid_value", "type")
        model = (config or {}).get("model") or server.default_model
        try:
            session = RealtimeSession.create(model=model, wall_now=server.clock(),
                                             config=server.model_config,
                                             ids=IdFactory(),
                                             initial=config, transport="sip")
        except ClientError as exc:
            raise CallControlError(400, exc.message, exc.code, exc.param) from None
        return self._answer(call, session, model)

    def accept_live(self, live_id: str, config: dict[str, Any]) -> SipMediaCall:
        """Answer a pending call on the GPT-Live surface (``POST /v1/live/sessions/{id}/accept``,
        body ``{"session": {...}}``): the call's model is a started Live session."""
        call = self._pending(self.call_id_of(live_id))
        server = self.server
        session = LiveSession(server.model_config, IdFactory(), server.clock(),
                              transport="sip",
                              models=None if server.models is None else server.models | LIVE_MODELS)
        refused = session.start_for_call(config, live_id, trio.current_time())
        if refused is not None:
            raise CallControlError(400, refused["message"], refused["code"], refused.get("param"))
        return self._answer(call, session, session.session["model"])

    def _answer(self, call: IncomingSipCall, session: Any, model: str) -> SipMediaCall:
        assert self.ua is not None and self._nursery is not None
        call_id, server = call.call_id, self.server
        offer = call.invite.remote_sdp
        if offer is None:
            raise CallControlError(400, "The INVITE carries no SDP offer.", "invalid_offer")
        rtp = trio.socket.from_stdlib_socket(udp_socket(self.host, 0))
        try:
            answer = create_answer(offer, self.host, rtp.getsockname()[1])
            media = audio_session(answer, offer)
        except (SdpNegotiationError, SipError) as exc:
            rtp.close()
            self._decline(call, 488, "not acceptable here")
            raise CallControlError(400, f"Cannot answer the offer: {exc}", "invalid_offer") from None
        now = trio.current_time()
        self.ua.answer(call.invite.call_id, answer.to_bytes(), now)
        call.state = "accepted"
        record = server.open_record(model=model, call_id=call_id, auth_kind="api_key", subprotocol=None)
        record.transport, record.session = "sip", session
        call.media = SipMediaCall(self, call_id, call.invite.call_id, session, media, rtp, record=record)
        server.calls[call_id] = call.media
        self.stats.accepted += 1
        self._nursery.start_soon(self._run_call, call.media, name=f"sip-call:{call_id}")
        call.decided.set()
        self._flush()
        return call.media

    async def _run_call(self, media: SipMediaCall) -> None:
        """One call's media; a failure ends that call (BYE), never the server."""
        try:
            await media.run()
        except Exception as exc:
            _log.exception("SIP call %s failed", media.call_id)
            media.end_reason = media.end_reason or f"internal error: {type(exc).__name__}"
            self.hangup_sip(media.sip_call_id)

    def reject(self, call_id: str, status: int = 603) -> None:
        if not isinstance(status, int) or isinstance(status, bool) or not 300 <= status <= 699:
            raise CallControlError(400, "status_code must be an integer in 300..699.",
                                   "invalid_value", "status_code")
        self._decline(self._pending(call_id), status, None)
        self.stats.rejected += 1

    def refer(self, call_id: str, target_uri: str) -> None:
        assert self.ua is not None
        if not isinstance(target_uri, str) or not target_uri.startswith(("sip:", "sips:", "tel:")):
            raise CallControlError(400, "target_uri must be a sip:, sips: or tel: URI.",
                                   "invalid_value", "target_uri")
        call = self.calls.get(call_id)
        if call is not None and call.state == "accepted" and call.media is not None and call.media.live:
            sip_call = self.ua.call(call.invite.call_id)
            if sip_call is None or sip_call.dialog is None:
                raise CallControlError(404, f"No call with id '{call_id}'.", "call_not_found", "call_id")
            request = sip_call.dialog.create_request("REFER", via=self.ua.via(), headers=(
                ("Refer-To", f"<{target_uri}>"), ("Contact", self.ua.config.contact)))
            self.ua.start_client_transaction(request, sip_call.dialog.destination(), None,
                                             trio.current_time())
            self.stats.referred += 1
            self._flush()
            return
        self._decline(self._pending(call_id), 302, None, (("Contact", f"<{target_uri}>"),))
        self.stats.referred += 1

    async def hangup(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state in ("gone", "rejected"):
            raise CallControlError(404, f"No live call with id '{call_id}'.", "call_not_found", "call_id")
        if call.media is not None:
            await call.media.hangup("hung up by request")
            return
        self._decline(call, 603, "hung up by request")

    def hangup_sip(self, sip_call_id: str) -> None:
        assert self.ua is not None
        self.ua.hangup(sip_call_id, trio.current_time())
        self._flush()

    def _decline(self, call: IncomingSipCall, status: int, reason: str | None,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        assert self.ua is not None
        call.state = "rejected"
        try:
            self.ua.reject(call.invite.call_id, trio.current_time(), status, reason, headers)
        except SipError:
            pass  # the caller is gone already
        call.decided.set()
        self.calls.pop(call.call_id, None)
        self._flush()


def _describe(event: object) -> str:
    if isinstance(event, CallEnded):
        return f"{event.reason or 'bye'} ({event.by})"
    if isinstance(event, CallCancelled):
        return f"cancelled ({event.by})"
    if isinstance(event, CallFailed):
        return f"failed {event.status} {event.reason}"
    return "ended"
