"""The WebSocket side of the embedded server: ``/v1/realtime`` connections (I/O shell).

Connect with ``?model=<model>`` (a new session), ``?intent=transcription`` (a transcription
session: ``standin/model/transcription.py``) or ``?call_id=<id>`` (a sideband socket for a
call), one of them (a client secret's session stands for the first two). A ``call_id`` naming a live WebRTC call attaches to it (``rtc_session.py``:
it sees the call's server events, its events go to the call's model); any other ``call_id`` gets
a session of its own (SIP calls are not modelled yet), and authenticate with
``Authorization: Bearer <key>`` or the subprotocols ``realtime`` + ``openai-insecure-api-key.<key>``
(the server selects ``realtime``). The key is a standard API key or an unexpired ``ek_`` secret.

**Refusals happen after the handshake**, as the hosted service is reported to do and as browsers
need (they cannot read an HTTP status of a failed handshake). The server accepts, sends one GA
``error`` event, then closes:

=====================================  ===========================  ==========
cause                                  ``error.code``               close code
=====================================  ===========================  ==========
missing/unknown/expired key or secret  ``invalid_api_key``          **4001**
``OpenAI-Beta: realtime=v1`` header     ``beta_api_shape_disabled``  4000
both or neither of model / call_id,    ``invalid_value`` /          1008
an intent other than transcription,    ``missing_required_parameter``
an intent with a call_id
a model outside ``server.models``       ``model_not_found``          1008
over the plan's max_concurrent_sessions ``rate_limit_exceeded``      1013
=====================================  ===========================  ==========

So a client recognises an auth failure by ``error.code == "invalid_api_key"`` or close code 4001
and must not retry without a new key (4001 is outside the SDK's reconnect list).

Per connection, one nursery runs a reader (client frames -> model), a timer task, a fault timer
(timed drops, expiry) and the single sender, which applies latency, malformed frames and
drop-after-N from the live :class:`~.faults.FaultPlan`. The model's deadlines (paced audio) are
handled in the run's one deadline task (``standin/model/timer.py``, ``_on_deadline``); the
connection's timer task only raises a failure of that handler, or waits for room in a full queue
before the next deadline is armed (as input waits). Under the lean front
the reader's work for a text message is done inline where the front read it (``_inline``: the
front's ``rtfleet.inline_receive``), so a streaming session's appends cost no task switch; the
reader task handles whatever the front hands it instead. Server events wait for the sender in an
unbounded queue, but input waits (and is not read, so TCP pushes back) while ``OUT_LIMIT`` are
queued. Under the lean front the events an append, a deadline or the reader produced are
written where they were produced (``_write_now``: the front's ``rtfleet.inline_send``) when the
sender has nothing queued or in hand and the plan delays, follows or counts towards a drop no
event: the same bytes in the same order, without a wake-up of the sender. While it runs,
``record.drop_now()`` drops it at once (``EmbeddedServer.drop_connections``: the fault hook of
``rtfleet serve``'s ``drop_connections``), the plan's ``drop_mode`` deciding how.
"""

from __future__ import annotations

import json
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import attrs
import trio

from standin.model.events import IdFactory, error_event, event_json
from standin.records import ConnectionRecord
from standin.faults.plan import ConnectionFaults, Drop, Expire
from standin.model.realtime import RealtimeSession
from standin.model.timer import SharedTimer
from standin.sessions.rtc_session import run_sideband
from standin.faults.tcp_abort import abort_connection

if TYPE_CHECKING:
    from standin.host import SessionHost

__all__ = ["handle_websocket"]

KEY_SUBPROTOCOL = "openai-insecure-api-key."
AUTH_FAILURE_CLOSE = 4001
BETA_CLOSE = 4000
POLICY_CLOSE = 1008
#: try again later: a refusal over ``max_concurrent_sessions`` (a retryable close)
OVER_LIMIT_CLOSE = 1013
#: server events queued for the sender beyond which input waits (and is not read)
OUT_LIMIT = 1024
#: the front's inline receiving and sending (``standin/front/lean.py``)
INLINE_RECEIVE = "rtfleet.inline_receive"
INLINE_SEND = "rtfleet.inline_send"
FLUSH = "rtfleet.flush"
#: events written in one go at most (``"more": True`` sends, then a flush) under the lean front
SEND_BATCH = 32


@attrs.frozen
class _Out:
    at: float
    event: dict[str, Any] | None = None
    close_code: int | None = None
    close_reason: str = ""
    #: write what an inline write left over (the front's ``rtfleet.flush``), nothing else
    flush: bool = False


class _OutQueue:
    """Server events for the sender, oldest first; unbounded (input waits at ``OUT_LIMIT``)."""

    def __init__(self) -> None:
        self.items: deque[_Out] = deque()
        self._ready = trio.Event()

    def __len__(self) -> int:
        return len(self.items)

    def put(self, out: _Out) -> None:
        self.items.append(out)
        self._ready.set()

    async def get(self, checkpoint: bool = True) -> _Out:
        """The next event (``checkpoint=False``: no yield when one is queued)."""
        if checkpoint or not self.items:
            await trio.lowlevel.checkpoint()
        while not self.items:
            self._ready = trio.Event()
            await self._ready.wait()
        return self.items.popleft()


def _credential(headers: dict[str, str], subprotocols: list[str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    for protocol in subprotocols:
        if protocol.startswith(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL):] or None
    return None


async def handle_websocket(server: SessionHost, scope: dict[str, Any], receive: Any, send: Any) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    offered = [str(p) for p in scope.get("subprotocols") or []]
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    model = (query.get("model") or [None])[0]
    call_id = (query.get("call_id") or [None])[0]
    intent = (query.get("intent") or [None])[0]
    auth = server.authenticate(_credential(headers, offered))
    subprotocol = "realtime" if "realtime" in offered else None
    record = server.open_record(model=model, call_id=call_id, auth_kind=auth.kind, subprotocol=subprotocol)
    ids = IdFactory()
    admitted = False
    try:
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        refusal = _refusal(auth, headers, model, call_id, server.models, intent)
        if refusal is not None:
            code, close_code, message, param = refusal
            event = error_event(ids.new("event"), code=code, message=message, param=param)
            await send({"type": "websocket.send", "text": json.dumps(event)})
            server.stats.errors_sent += 1
            record.close_code, record.closed_by = close_code, "server"
            await send({"type": "websocket.close", "code": close_code, "reason": code})
            return
        call = server.calls.get(call_id) if call_id else None
        if call is not None and call.live:
            record.transport, record.model, record.session = "sideband", call.session.session["model"], call.session
            await run_sideband(call, record, receive, send)
            return
        if auth.secret is not None:
            model = auth.secret.session.get("model") or model
        if not server.limiter.admit_session(server.faults):
            await _refuse_over_limit(server, record, ids, send)
            return
        admitted = True
        record.model = model or server.default_model
        record.session = RealtimeSession.create(
            model=record.model,
            wall_now=server.clock(),
            config=server.model_config,
            ids=ids,
            initial=auth.secret.session if auth.secret is not None else None,
            transport="sideband" if call_id else "websocket",
            intent=intent,
        )
        record.transport = record.session.transport
        record.session.limits = server.limiter.bind(lambda: server.faults)
        await _Connection(server, record, record.session, scope, receive, send).run()
    finally:
        if admitted:
            server.limiter.session_closed()
        server.close_record(record)
        server.stats.connections_closed += 1


async def _refuse_over_limit(server: SessionHost, record: ConnectionRecord, ids: IdFactory, send: Any) -> None:
    """Over the plan's ``max_concurrent_sessions``: an ``error`` ``rate_limit_exceeded``, then
    close 1013 (try again later: a client reconnects with backoff)."""
    limit = server.faults.max_concurrent_sessions
    event = error_event(ids.new("event"), code="rate_limit_exceeded", type="requests",
                        message=f"Rate limit reached for concurrent sessions: Limit {limit}. "
                                "Please try again later.")
    await send({"type": "websocket.send", "text": json.dumps(event)})
    server.stats.errors_sent += 1
    record.close_code, record.closed_by = OVER_LIMIT_CLOSE, "server"
    await send({"type": "websocket.close", "code": OVER_LIMIT_CLOSE, "reason": "rate_limit_exceeded"})


def _refusal(
    auth: Any, headers: dict[str, str], model: str | None, call_id: str | None,
    models: frozenset[str] | None = None, intent: str | None = None,
) -> tuple[str, int, str, str | None] | None:
    """``(error code, close code, message, param)`` when the connection must be refused."""
    if auth.kind is None:
        return "invalid_api_key", AUTH_FAILURE_CLOSE, auth.reason, None
    if "realtime=v1" in headers.get("openai-beta", ""):
        return (
            "beta_api_shape_disabled",
            BETA_CLOSE,
            "The beta Realtime API shape is disabled; remove the OpenAI-Beta: realtime=v1 header.",
            None,
        )
    if model and call_id:
        return "invalid_value", POLICY_CLOSE, "Specify either 'model' or 'call_id', not both.", "call_id"
    if intent is not None:
        if intent != "transcription":
            return ("invalid_value", POLICY_CLOSE,
                    f"Invalid value: '{intent}'. Supported intents: transcription.", "intent")
        if call_id:
            return "invalid_value", POLICY_CLOSE, "Specify either 'intent' or 'call_id', not both.", "intent"
        return None
    if not model and not call_id and auth.secret is None:
        return "missing_required_parameter", POLICY_CLOSE, "The 'model' query parameter is required.", "model"
    if model and models is not None and model not in models:
        message = f"The model '{model}' does not exist or you do not have access to it."
        return "model_not_found", POLICY_CLOSE, message, "model"
    return None


class _Connection:
    def __init__(self, server: SessionHost, record: ConnectionRecord, session: Any,
                 scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.server = server
        self.record = record
        self.session = session
        self.scope = scope
        self.receive = receive
        self.send = send
        self.faults = ConnectionFaults.for_connection(
            server.faults, record.index, record.connected_at, server.model_config.max_session_s
        )
        # unbounded, but input waits (_emit) or is refused inline while OUT_LIMIT are queued
        self._out = _OutQueue()
        self._room: trio.Event | None = None  # set by the sender once the queue is under the limit
        #: the session's deadlines, handled in the run's one deadline task (``_on_deadline``)
        self._model_timer = SharedTimer(session, self._on_deadline)
        #: set by ``_on_deadline`` to hand the ``_timer`` task a failure or a full queue
        self._timer_call = trio.Event()
        self._timer_failure: BaseException | None = None
        self._cancel = trio.CancelScope()
        self._stopped = False  # the dialect ended the session: nothing more is read
        #: the front's inline write (``rtfleet.inline_send``; None: none, all through the sender)
        self._send_now = ((scope.get("extensions") or {}).get(INLINE_SEND) or {}).get("send_now")
        self._busy = False  # the sender has an event in hand (taken from the queue, not yet done)
        #: the dialect can end the session itself (Live: ``closing``); read once, not per message
        self._can_close = hasattr(session, "closing")

    async def run(self) -> None:
        #: the run's clock read directly (trio.current_time's value, two calls fewer per message)
        self._clock_now = trio.lowlevel.current_clock().current_time
        if INLINE_RECEIVE in (self.scope.get("extensions") or {}):
            await self.send({"type": INLINE_RECEIVE, "handler": self._inline})
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._sender)
                    nursery.start_soon(self._reader)
                    nursery.start_soon(self._timer)
                    nursery.start_soon(self._fault_timer)
                    self.record.drop_now = partial(nursery.start_soon, self._drop_now)
                    await self._emit(self.session.start())
        finally:
            self._model_timer.close()
        self.record.drop_now = None

    async def _emit(self, events: list[dict[str, Any]]) -> None:
        now = trio.current_time()
        if events and not self._write_now(events, now):
            for event in events:
                self._out.put(_Out(now, event=event))
        while len(self._out) >= OUT_LIMIT:  # the client is not reading: nor do we
            if self._room is None:
                self._room = trio.Event()
            await self._room.wait()

    def _inline(self, text: str) -> bool:
        """A text message handled where the front read it (its read multiplexer: no task switch
        per append), as :meth:`_reader` would; False (not handled: it comes to the reader) while
        the sender is behind or once the session ended."""
        out = self._out
        if self._stopped or len(out.items) >= OUT_LIMIT:
            return False
        self.server.stats.client_events_received += 1
        now = self._clock_now()
        events = self.session.receive_text(text, now)
        if events and not self._write_now(events, now):  # most appends answer nothing
            for event in events:
                out.put(_Out(now, event=event))
        self._model_timer.poke()
        if self._can_close and self.session.closing:  # the dialect ended the session (Live)
            self._out.put(_Out(now, close_code=1000, close_reason="session closed"))
            self._stopped = True
        return True

    def _write_now(self, events: list[dict[str, Any]], now: float) -> bool:
        """``events`` written at once by the front (True), as the sender would write them, when
        that changes nothing: the sender has nothing queued or in hand (order), the plan delays
        no event and injects nothing after one (latency, malformed frames, drop after N events:
        the sender applies those), they are few enough for one write (``SEND_BATCH``), and the
        connection is not closing (then they are queued, and neither sent nor counted, as the
        sender's would be). What the socket did not take is written next by the sender (a
        flush queued first)."""
        send_now = self._send_now
        if (send_now is None or self._busy or self._out.items or len(events) > SEND_BATCH
                or self._ending):
            return False
        if self.server.faults.acts_per_event:
            return False
        held = send_now([event_json(event) for event in events])
        if held is None:
            return False
        count = len(events)
        self.faults.count_sent(count)
        self.record.events_sent += count
        stats = self.server.stats
        stats.events_sent += count
        for event in events:
            if event["type"] == "error":
                stats.errors_sent += 1
        if held:  # the socket is full: the sender writes the rest (and waits for it)
            self._out.put(_Out(now, flush=True))
        return True

    async def _reader(self) -> None:
        while True:
            message = await self.receive()
            if self._stopped:  # ended inline (the message is one the session no longer reads)
                return
            kind = message["type"]
            if kind == "websocket.disconnect":
                if self.record.closed_by is None:
                    self.record.closed_by = "client"
                    self.record.close_code = message.get("code", 1005)
                self._cancel.cancel()
                return
            if kind != "websocket.receive":
                continue
            self.server.stats.client_events_received += 1
            now = trio.current_time()
            if message.get("text") is not None:
                events = self.session.receive_text(message["text"], now)
            else:
                events = self.session.receive_binary(message.get("bytes") or b"", now)
            await self._emit(events)
            self._model_timer.poke()
            if self._can_close and self.session.closing:  # the dialect ended the session (Live)
                self._stopped = True
                self._out.put(_Out(now, close_code=1000, close_reason="session closed"))
                return

    @property
    def _ending(self) -> bool:
        """The connection is closing (by either side, or a drop): nothing more is written or
        handled here (the tasks that would are being cancelled)."""
        return self._cancel.cancel_called or self.record.close_code is not None

    def _on_deadline(self, now: float) -> None:
        """The session's deadline is due (called in the run's deadline task): its events
        written or queued, and the next deadline armed, unless the queue is full (the client
        does not read): then the ``_timer`` task waits for room first, as ``_emit`` waits. A
        failure is raised in the ``_timer`` task (the connection's, as before). Nothing once
        the connection is closing (its timer task would have been cancelled)."""
        if self._ending:
            return
        try:
            events = self.session.handle_timer(now)
        except Exception as exc:
            self._timer_failure = exc
            self._timer_call.set()
            return
        if events and not self._write_now(events, now):
            for event in events:
                self._out.put(_Out(now, event=event))
        if len(self._out) >= OUT_LIMIT:
            self._timer_call.set()
        else:
            self._model_timer.poke()

    async def _timer(self) -> None:
        """Only woken by ``_on_deadline``: raises its failure, or waits for room in the queue
        and re-arms the deadline."""
        while True:
            await self._timer_call.wait()
            self._timer_call = trio.Event()
            if self._timer_failure is not None:
                raise self._timer_failure
            await self._emit([])  # waits while the queue is full
            self._model_timer.poke()

    async def _fault_timer(self) -> None:
        action: Drop | Expire
        while True:
            changed = self.server.faults_changed
            when, action = self.faults.next_timed(self.server.faults, trio.current_time())
            with trio.move_on_at(when) as waited:
                await changed.wait()
            if waited.cancelled_caught:
                break
        if isinstance(action, Drop):
            await self._drop(action)
            return
        if action.cause == "fault":
            self.server.stats.faults.sessions_expired += 1
        else:
            self.server.stats.sessions_ended_max_length += 1
        now = trio.current_time()
        expired = getattr(self.session, "expired", None)
        if expired is not None:  # a dialect with its own end (Live: session.closed "expired")
            for event in expired():
                self._out.put(_Out(now, event=event))
            self._out.put(_Out(now, close_code=1000, close_reason="expired"))
            return
        event = error_event(
            self.session.ids.new("event"),
            code="session_expired",
            message="Your session hit the maximum duration.",
        )
        self._out.put(_Out(now, event=event))
        self._out.put(_Out(now, close_code=1001, close_reason="session_expired"))

    async def _sender(self) -> None:
        """Sends the queued events in order; under the lean front, those already queued behind
        one go out in one write (``"more": True`` holds the flush, up to ``SEND_BATCH``), unless
        a fault comes after it (latency, a malformed frame, a drop: each sees its event sent).
        Nothing else runs while a write is held, so a drop never loses an event counted sent."""
        stats = self.server.stats
        batching = INLINE_RECEIVE in (self.scope.get("extensions") or {})
        held = 0
        while True:
            self._busy = False
            out = await self._out.get(checkpoint=not held)  # held: nothing runs in between
            self._busy = True
            if self._room is not None and len(self._out) < OUT_LIMIT:
                self._room.set()
                self._room = None
            if out.flush:
                await self.send({"type": FLUSH})
                held = 0
                continue
            plan = self.server.faults
            if plan.latency_ms > 0:
                await trio.sleep_until(out.at + plan.latency_ms / 1000)
                stats.faults.delayed_events += 1
            if out.event is None:
                await self._close(out.close_code or 1000, out.close_reason)
                return
            malformed, drop = self.faults.after_event(plan)
            message = {"type": "websocket.send", "text": event_json(out.event)}
            if (batching and self._out.items and held < SEND_BATCH and malformed is None
                    and drop is None and plan.latency_ms <= 0):
                message["more"] = True
                held += 1
            else:
                held = 0
            await self.send(message)
            self.record.events_sent += 1
            stats.events_sent += 1
            if out.event["type"] == "error":
                stats.errors_sent += 1
            if malformed is not None:
                await self._send_malformed(malformed, plan.oversized_bytes)
            if drop is not None:
                await self._drop(drop)
                return

    async def _send_malformed(self, kind: str, oversized_bytes: int) -> None:
        self.server.stats.faults.malformed[kind] += 1
        if kind == "binary":
            await self.send({"type": "websocket.send", "bytes": b"\x00rtfleet-fault\xff"})
            return
        if kind == "invalid_json":
            text = '{"type": "response.output_text.delta", "delta": "trunc'
        else:
            event = {"type": f"rtfleet.fault.{kind}", "event_id": self.session.ids.new("event")}
            text = json.dumps(event)
            if kind == "oversized":
                pad = max(0, oversized_bytes - len(text) - len(',"padding":""'))
                text = text[:-1] + ',"padding":"' + "x" * pad + '"}'
        await self.send({"type": "websocket.send", "text": text})

    async def _drop_now(self) -> None:
        self.record.drop_now = None
        plan = self.server.faults
        await self._drop(Drop("now", plan.drop_mode, plan.drop_close_code))

    async def _drop(self, drop: Drop) -> None:
        faults = self.server.stats.faults
        faults.drops[drop.cause] += 1
        code = drop.code
        if drop.mode == "abort":
            if abort_connection(self.scope.get("server"), self.scope.get("client")):
                faults.aborted += 1
                self.record.close_code, self.record.closed_by = 1006, "server"
                self._cancel.cancel()
                return
            faults.abort_fallbacks += 1
            code = 1011
        faults.closed_with_code[code] += 1
        await self._close(code, "rtfleet fault injection")

    async def _close(self, code: int, reason: str) -> None:
        self.record.close_code, self.record.closed_by = code, "server"
        await self.send({"type": "websocket.close", "code": code, "reason": reason})
        self._cancel.cancel()
