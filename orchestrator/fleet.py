"""The embedding API: a fleet of supervised realtime sessions in your own trio program.

::

    async with open_fleet() as fleet:                       # embedded server, no key needed
        sid = await fleet.add_session(config={"instructions": "Be brief."})
        await fleet.wait_connected(sid)
        async with fleet.subscribe(sessions=[sid], types=["response.done"]) as sub:
            await fleet.send(sid, user_text("Hello"))
            await fleet.send(sid, {"type": "response.create"})
            done = await sub.receive()
        print(fleet.status(sid))

``fleet.ask(sid, "Hello")`` does the last four lines in one call and returns the answer text.
``await fleet.stream_audio(sid, pcm)`` streams audio at real time from the process's one audio
clock (:mod:`actors.pacer`), the cheap way to drive many speaking sessions.
The fleet is trio-native; from asyncio use :func:`rtfleet.asyncio.open_fleet` (same methods,
as asyncio coroutines). ``statuses()`` lists the sessions not removed (a removed session leaves
it once it has ended); ``SessionStatus.connected_since`` is wall-clock epoch seconds.

``open_fleet(target=…)`` takes ``"embedded"`` (start the embedded realtime-compatible server
in the fleet's nursery with a generated key) or a base URL (``https://api.openai.com``,
``ws://127.0.0.1:8765``) with ``api_key=`` or ``OPENAI_API_KEY``, or an
:class:`~actors.endpoint.Endpoint` (``AzureEndpoint(...)`` for Azure OpenAI,
``OpenAIEndpoint(url, headers=...)`` for a service that wants headers of its own); a bearer
token fetched by a command (Entra ID) is ``token_source=TokenCommand(...)``.
"""

from __future__ import annotations

from collections import Counter
import functools
import gc
import itertools
import math
import random
import secrets
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, Mapping

import attrs
import trio

from actors.credentials import Secret
from actors.endpoint import Endpoint, OpenAIEndpoint
from actors.events import ConnectionState, EventKind, Transport
from actors.http import SharedHttpClient
from actors.link import SessionLink
from actors.proto.client import ClientCore
from actors.proto.live.config import live_model
from actors.proto.live.dialect import LIVE
from actors.proto.realtime.dialect import REALTIME
from actors.proto.client_values import DEFAULT_MAX_RESTORE_BYTES
from actors.proto.realtime.events import Base64Text
from actors.proto.session import SessionConfig, audio_bytes_per_ms
from actors.websocket import ConnectParams, run_websocket
from orchestrator.keys import KeyManager, refresh_ahead
from actors.pacer import audio_clock
from orchestrator.token_source import TokenCommand
from orchestrator.policy import Backoff, RestartPolicy
from orchestrator.ratelimits import CONNECTIONS, RateLimitTracker, rate_limited_category
from orchestrator.router import EventFilter, Router, Subscription
from orchestrator.supervisor import SessionSpec, SessionStatus, Supervisor

__all__ = ["AnswerTimeout", "Fleet", "FleetError", "open_fleet", "user_text", "actor_for",
           "available_transports", "answer_text", "api_base", "PROTOCOLS"]

#: the protocols a session may speak (``add_session(protocol=...)``): one contract, two dialects
PROTOCOLS = {"realtime": REALTIME, "live": LIVE}


class FleetError(Exception):
    pass


class AnswerTimeout(FleetError, TimeoutError):
    """``ask`` saw no ``response.done`` for its turn in time."""


def _webrtc_actor() -> Any:
    try:
        from actors.webrtc import run_webrtc
    except ImportError as exc:
        raise FleetError(f"WebRTC needs the webrtc extra: pip install 'rtfleet[webrtc]' ({exc})") from None
    return run_webrtc


def actor_for(transport: Transport) -> Any:
    if transport is Transport.WEBSOCKET:
        return run_websocket
    if transport is Transport.WEBRTC:
        return _webrtc_actor()
    if transport is Transport.SIP:  # options per session: actors.sip.plan_call(sid, SipOptions(...))
        from actors.sip import run_sip

        return run_sip
    raise FleetError(f"transport {transport.value!r} is not available in this build")


def available_transports() -> list[Transport]:
    found = [Transport.WEBSOCKET]
    try:
        _webrtc_actor()
        found.append(Transport.WEBRTC)
    except FleetError:
        pass
    found.append(Transport.SIP)  # per-session SipOptions: add_session(sip_options=...)
    return found


async def _open_metrics(nursery: trio.Nursery, fleet: Fleet, port: int, host: str) -> Any:
    """The fleet's own meter provider, read by a Prometheus endpoint started in ``nursery``."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource

    from orchestrator.live_metrics import observe_fleet
    from orchestrator.metrics_endpoint import MetricsEndpoint, histogram_views

    endpoint = MetricsEndpoint(port, host)
    provider = MeterProvider(metric_readers=[endpoint.reader()], views=histogram_views(),
                             resource=Resource.create({"service.name": "rtfleet"}))
    observe_fleet(provider.get_meter("rtfleet"), fleet)
    try:
        await nursery.start(endpoint.serve)
    except OSError as exc:
        provider.shutdown()
        raise FleetError(f"metrics_port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    fleet.metrics_endpoint = endpoint
    return provider


def _pcm_frames(pcm: bytes, frame_bytes: int) -> Iterator[str]:
    for offset in range(0, len(pcm), frame_bytes):
        yield Base64Text.of(pcm[offset: offset + frame_bytes])


def _frame_text(frame: bytes | bytearray | memoryview | str) -> str:
    if isinstance(frame, str):
        return frame
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return Base64Text.of(frame)
    raise FleetError(f"stream_audio: a frame is bytes or base64 str, not {type(frame).__name__}")


def user_text(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    """A ``conversation.item.create`` for a user text message."""
    item: dict[str, Any] = {"type": "message", "role": "user",
                            "content": [{"type": "input_text", "text": text}]}
    if item_id is not None:
        item["id"] = item_id
    return {"type": "conversation.item.create", "item": item}


def api_base(url: str) -> str:
    """The service's base URL as every path is appended to it: no trailing ``/`` or ``/v1``
    (``http://host:8765/v1`` as the SDKs' ``base_url`` takes it, and ``http://host:8765``, are the
    same target)."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def answer_text(response: Mapping[str, Any]) -> str:
    """The text of a ``response.done``'s response: its text parts, or its audio transcripts."""
    parts = []
    for item in response.get("output") or ():
        for part in item.get("content") or ():
            text = part.get("text") if part.get("type") in ("output_text", "text") else part.get("transcript")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


@attrs.define(eq=False)
class Fleet:
    nursery: trio.Nursery
    url: str
    keys: KeyManager
    router: Router
    supervisor: Supervisor
    default_config: SessionConfig | None = None
    default_model: str = "gpt-realtime"
    backoff: Backoff = Backoff()
    policy: RestartPolicy = RestartPolicy.PERMANENT
    max_restarts: int = 10
    restart_window: float = 60.0
    connect_params: Mapping[str, Any] = attrs.field(factory=dict)
    #: the embedded server when ``target="embedded"``
    server: Any = None
    links: dict[str, SessionLink] = attrs.field(factory=dict)
    #: a trio-asyncio loop for aiortc is open around the fleet
    webrtc: bool = False
    #: the most sessions the fleet runs at once (None: no limit); more is a FleetError
    max_sessions: int | None = None
    #: ``actors.webrtc.RtcOptions`` for WebRTC sessions (None: the actor's defaults)
    rtc_options: Any = None
    #: per-session bound of what is kept to restore a conversation (bytes; see ClientCore)
    max_restore_bytes: int = DEFAULT_MAX_RESTORE_BYTES
    _ids: Iterable[int] = attrs.field(factory=lambda: itertools.count(1))
    _asks: Iterable[int] = attrs.field(factory=lambda: itertools.count(1))
    #: sessions given to remove_session: they leave statuses() once ended
    _removed: set[str] = attrs.field(factory=set)
    _watchers: dict[str, list[tuple[ConnectionState, trio.Event]]] = attrs.field(factory=dict)
    #: counters of sessions removed with ``forget=True`` (connects, reconnects, replayed and
    #: lost turns), so the fleet's totals (``orchestrator/live_metrics.py``) never go down
    forgotten: Counter[str] = attrs.field(factory=Counter)
    #: the Prometheus endpoint, when opened with ``metrics_port``
    metrics_endpoint: Any = None
    #: the service's announced rate limits per key and model, and its refusals
    #: (``orchestrator/ratelimits.py``), from the events the fleet routes
    rate_limits: RateLimitTracker = attrs.field(factory=RateLimitTracker)
    #: each session's model (what its rate limits are tracked under)
    _models: dict[str, str] = attrs.field(factory=dict)
    #: the service's paths and auth header shape (None: OpenAI's under ``url``)
    endpoint: Endpoint | None = None
    #: :meth:`freeze_heap` froze the heap (the fleet's close thaws it)
    heap_frozen: bool = False

    # -- sessions -------------------------------------------------------------------------

    async def add_session(
        self,
        session_id: str | None = None,
        *,
        transport: Transport | str = Transport.WEBSOCKET,
        config: SessionConfig | Mapping[str, Any] | None = None,
        model: str | None = None,
        call_id: str | None = None,
        policy: RestartPolicy | str | None = None,
        sip_options: Any = None,
        replay: bool | None = None,
        protocol: str = "realtime",
        **params: Any,
    ) -> str:
        """Start a supervised session; returns its id at once (see ``wait_connected``).

        SIP sessions take ``sip_options`` (``actors.sip.SipOptions``: the phone, whom to call
        or which call to answer; or plan them with ``actors.sip.plan_call``). ``replay``: replay
        the conversation into a new connection after a reconnect (default: yes, unless the
        session is a ``call_id`` sideband, which re-attaches to a call that kept it).
        ``protocol``: ``"realtime"`` (``/v1/realtime``) or ``"live"`` (GPT-Live,
        ``/v1/live/sessions``; WebSocket only so far): the same events either way (see the
        README's "Two protocols" table)."""
        if protocol not in PROTOCOLS:
            raise FleetError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        transport = Transport(transport)
        actor = actor_for(transport)
        if transport is Transport.WEBRTC and self.rtc_options is not None:
            actor = functools.partial(actor, options=self.rtc_options)
        if sip_options is not None:
            if transport is not Transport.SIP:
                raise FleetError("sip_options are for transport='sip' sessions")
            actor = functools.partial(actor, options=sip_options)
        if transport is Transport.WEBRTC and self.keys.mode != "ephemeral":
            raise FleetError("WebRTC sessions need ephemeral keys (key_mode='ephemeral')")
        if transport is Transport.WEBRTC and not self.webrtc:
            raise FleetError("open the fleet with open_fleet(..., webrtc=True) for WebRTC sessions")
        if self.max_sessions is not None:
            live = sum(1 for c in self.supervisor.children.values() if not c.done.is_set())
            if live >= self.max_sessions:
                raise FleetError(f"the fleet already runs {live} sessions (max_sessions={self.max_sessions})")
        sid = session_id or f"s{next(self._ids):05d}"  # type: ignore[call-overload]
        if sid in self.links and not self.supervisor.children[sid].done.is_set():
            raise FleetError(f"session {sid!r} already exists")
        if isinstance(config, Mapping):
            config = SessionConfig.from_dict(dict(config))
        config = config or self.default_config
        # A ?call_id= sideband socket re-attaches to a live call: restore the config, never
        # replay the conversation into it (that would duplicate the call's history).
        if protocol == "live":
            if self.endpoint is not None and not isinstance(self.endpoint, OpenAIEndpoint):
                raise FleetError("protocol='live' sessions need an OpenAI-shaped target")
            if transport is Transport.SIP:
                raise FleetError("protocol='live' sessions run over WebSocket or WebRTC "
                                 "(a SIP call reaches Live through a sideband: SipController)")
            config = attrs.evolve(config or SessionConfig(),
                                  model=live_model(model or (config.model if config else None)))
        transcribes = config is not None and config.transcribes
        if transcribes and (transport is not Transport.WEBSOCKET or protocol != "realtime" or call_id):
            raise FleetError("transcription sessions (config type 'transcription') run over "
                             "WebSocket on the Realtime protocol, not as a sideband")
        core = ClientCore(config, replay=call_id is None if replay is None else replay,
                          max_restore_bytes=self.max_restore_bytes, protocol=PROTOCOLS[protocol])
        link = SessionLink(sid, transport, core, self._publish)
        self.links[sid] = link
        self._removed.discard(sid)
        merged = {**self.connect_params, **params}
        connect = ConnectParams(
            url=self.url,
            credential=Secret("", kind="pending"),
            model=None if call_id or transcribes else (model or (config.model if config else None)
                                                        or self.default_model),
            call_id=call_id,
            intent="transcription" if transcribes else None,
            http=self.keys.shared_http,
            **({"endpoint": self.endpoint} if self.endpoint is not None else {}),
            **merged,
        )
        self._models[sid] = self.model_of(config, connect.model)
        spec = SessionSpec(
            actor, connect, RestartPolicy(policy or self.policy), self.backoff,
            self.max_restarts, self.restart_window,
        )
        self.supervisor.start(link, spec)
        return sid

    async def remove_session(self, session_id: str, *, forget: bool = False) -> SessionStatus:
        """Close the session cleanly and return its final status. It leaves ``statuses()``
        (``status(sid)`` still answers until the id is reused); ``forget`` also drops its
        state (long runs)."""
        self._link(session_id)
        self._removed.add(session_id)
        await self.supervisor.stop(session_id)
        status = self.supervisor.status(session_id)
        if forget and session_id in self._removed:  # not re-added meanwhile
            counters = self.links[session_id].core.counters
            self.forgotten.update(connects=status.connects, reconnects=status.reconnects,
                                  replayed_turns=counters.replayed_turns, lost_turns=counters.lost_turns)
            del self.links[session_id]
            del self.supervisor.children[session_id]
            self._models.pop(session_id, None)
            self._watchers.pop(session_id, None)
            self._removed.discard(session_id)
        return status

    async def send(self, session_id: str, event: Mapping[str, Any]) -> None:
        """Queue a client event for the session (waits while its control queue is full)."""
        await self._link(session_id).send(dict(event))

    def send_nowait(self, session_id: str, event: Mapping[str, Any]) -> None:
        self._link(session_id).send_nowait(dict(event))

    async def stream_audio(
        self,
        session_id: str,
        source: bytes | bytearray | memoryview | Iterable[bytes | str],
        *,
        frame_bytes: int | None = None,
        on_frame: Callable[[float, float], None] | None = None,
    ) -> int:
        """Stream audio to the session at real time, one 20 ms ``input_audio_buffer.append``
        per frame period, from the process's audio clock (:mod:`actors.pacer`: one task
        paces every stream and writes each due frame itself); returns once the last frame is
        sent, with the number of frames. Cancel it to stop the stream.

        ``source``: raw audio in the session's input format (``bytes``; cut into 20 ms frames of
        ``frame_bytes``, by default what the session's ``input_format`` takes in 20 ms), or an
        iterable of frames, each ``bytes`` (raw audio, base64-encoded here) or ``str``
        (base64 text as it is), pulled one per frame period (it may be endless).
        ``on_frame(due, sent_at)`` is called for every frame, on the trio clock: its lateness
        is ``sent_at - due``. Frames are queued like any append while the session is not
        connected (the oldest dropped beyond the core's audio limit, with a ``dropped``
        event)."""
        link = self._link(session_id)
        if isinstance(source, (bytes, bytearray, memoryview)):
            if frame_bytes is None:
                config = link.core.config
                frame_bytes = audio_bytes_per_ms(
                    config.input_format if config is not None else SessionConfig().input_format) * 20
            if frame_bytes < 1:
                raise FleetError(f"frame_bytes must be at least 1, not {frame_bytes}")
            frames: Iterator[str] = _pcm_frames(bytes(source), frame_bytes)
        else:
            frames = map(_frame_text, source)
        clock = audio_clock()
        stream = clock.add(link, frames, on_frame)
        try:
            return await stream.wait()
        finally:
            clock.remove(stream)

    def freeze_heap(self) -> int:
        """Take every object alive now out of the cyclic garbage collector's walks (a full
        collection first, then ``gc.freeze()``); returns how many objects it froze. Call it
        once the fleet's sessions are up. A full collection walks every object the process
        tracks, ~0.4 us each on a small box: at 500 streaming sessions (~180,000 objects) it
        stopped the process for 80-180 ms once every 10-20 s, and every stream's frames with
        it (a p99 lateness of 70-380 ms); after the freeze it walks only what came since
        (12-18 ms). Frozen objects are still freed when nothing refers to them; only a cycle
        among them waits for the fleet's close, which thaws the heap (``gc.unfreeze()``) so
        the collector reclaims what the fleet left. A process-wide setting: for programs
        whose long-lived state is set up first (a load test), not for ones that churn
        through objects in cycles."""
        gc.collect()
        gc.freeze()
        self.heap_frozen = True
        return gc.get_freeze_count()

    def subscribe(
        self,
        *,
        sessions: Iterable[str] | str | None = None,
        transports: Iterable[Transport | str] | None = None,
        kinds: Iterable[EventKind | str] | None = None,
        types: Iterable[str] | None = None,
        buffer: int | float = 1024,
    ) -> Subscription:
        return self.router.subscribe(EventFilter.of(sessions, transports, kinds, types), buffer=buffer)

    def status(self, session_id: str) -> SessionStatus:
        self._link(session_id)
        return self.supervisor.status(session_id)

    def statuses(self) -> dict[str, SessionStatus]:
        """Every session not removed: running ones and those that ended by themselves."""
        return {sid: child.status for sid, child in self.supervisor.children.items()
                if not (sid in self._removed and child.done.is_set())}

    def session_ids(self) -> list[str]:
        return list(self.links)

    async def wait_state(self, session_id: str, *states: ConnectionState | str) -> ConnectionState:
        """Wait until the session is in one of ``states``; returns the state reached."""
        wanted = {ConnectionState(s) for s in states}
        link = self._link(session_id)
        while link.state not in wanted:
            event = trio.Event()
            self._watchers.setdefault(session_id, []).append((link.state, event))
            await event.wait()
        return link.state

    async def wait_connected(self, session_id: str) -> None:
        state = await self.wait_state(session_id, ConnectionState.CONNECTED,
                                      ConnectionState.ERROR, ConnectionState.CLOSED)
        if state is not ConnectionState.CONNECTED:
            raise FleetError(f"session {session_id} ended {state.value}: "
                             f"{self.status(session_id).last_error}")

    async def ask(
        self,
        session_id: str,
        text: str,
        *,
        timeout: float = 30.0,
        response: Mapping[str, Any] | None = None,
    ) -> str:
        """Send ``text`` as a user turn plus a ``response.create`` and return the answer text
        (the response's text, or its audio transcript). The response is told apart from any
        other on the session by its ``metadata``. Raises :class:`AnswerTimeout` after
        ``timeout`` seconds, and :class:`FleetError` if the response ends ``failed`` or
        ``cancelled`` or the session ends first."""
        link = self._link(session_id)
        tag = f"ask-{next(self._asks)}"  # type: ignore[call-overload]
        body = dict(response or {})
        body["metadata"] = {**(body.get("metadata") or {}), "rtfleet_ask": tag}
        watch = self.router.subscribe(EventFilter.of(session_id), buffer=math.inf)
        try:
            await link.send(user_text(text))
            await link.send({"type": "response.create", "response": body})
            with trio.move_on_after(timeout):
                async for event in watch:
                    if event.kind is EventKind.STATE and event.payload["to"] in ("error", "closed"):
                        raise FleetError(f"session {session_id} ended {event.payload['to']} before "
                                         f"answering ({event.payload.get('reason')})")
                    if event.kind is not EventKind.SERVER or event.type != "response.done":
                        continue
                    done = event.payload.get("response") or {}
                    if (done.get("metadata") or {}).get("rtfleet_ask") != tag:
                        continue
                    if done.get("status") not in ("completed", "incomplete"):
                        raise FleetError(f"session {session_id}: response {done.get('id')} ended "
                                         f"{done.get('status')}: {done.get('status_details')}")
                    return answer_text(done)
                raise FleetError(f"session {session_id}: the fleet closed before answering")
        finally:
            watch.close()
        raise AnswerTimeout(f"session {session_id}: no response.done within {timeout:g}s "
                            f"for {text[:60]!r}")

    # -- internals ------------------------------------------------------------------------

    def _link(self, session_id: str) -> SessionLink:
        try:
            return self.links[session_id]
        except KeyError:
            raise FleetError(f"no session {session_id!r}") from None

    @property
    def key_label(self) -> str:
        """The key rate limits are tracked under: the standard key's fingerprint (never the
        key; client secrets minted from it share its limits)."""
        key = self.keys.api_key
        return key.fingerprint if key is not None else "none"

    def model_of(self, config: SessionConfig | None, model: str | None = None) -> str:
        """The model a session of ``config`` (or the ``?model=``) uses."""
        return model or (config.model if config else None) or self.default_model

    def admission_readings(self, model: str | None = None) -> tuple[list[Any], int | None]:
        """The latest rate-limit readings for ``model`` under the fleet's key, and the
        concurrency ceiling refusals taught (an admission gate's inputs)."""
        key = self.key_label
        return self.rate_limits.readings(key, model), self.rate_limits.learned(key, model)

    def _track_rate_limits(self, event: Any) -> None:
        """Feed ``rate_limits.updated`` and rate-limit refusals to :attr:`rate_limits`."""
        sid, payload = event.session_id, event.payload
        link = self.links.get(sid)
        if link is None:
            return
        model = self._models.get(sid, self.default_model)
        if event.kind is EventKind.SERVER and event.type == "rate_limits.updated":
            self.rate_limits.observe(self.key_label, model, payload.get("rate_limits"), trio.current_time())
            return
        connected = link.state is ConnectionState.CONNECTED
        category = rate_limited_category(event.kind.value, payload, connected=connected)
        if category is None:
            return
        up = None
        if category == CONNECTIONS:
            up = sum(1 for other, lk in self.links.items()
                     if lk.state is ConnectionState.CONNECTED and self._models.get(other) == model)
        self.rate_limits.refused(category, self.key_label, model, connected=up)

    def _publish(self, event: Any) -> None:
        self.router.publish(event)
        if event.kind is EventKind.SERVER:
            if event.payload["type"] in _RATE_LIMIT_TYPES:  # a server event: a checked dict
                self._track_rate_limits(event)
        elif event.kind is EventKind.STATE:
            if event.payload.get("to") in ("reconnecting", "error"):
                self._track_rate_limits(event)
            watchers = self._watchers.pop(event.session_id, None)
            if watchers:
                for _, ev in watchers:
                    ev.set()


#: the server events the fleet's rate-limit tracker reads
_RATE_LIMIT_TYPES = frozenset({"rate_limits.updated", "error"})


async def _close_shielded(http: SharedHttpClient) -> None:
    with trio.CancelScope(shield=True):
        await http.aclose()


@asynccontextmanager
async def open_fleet(
    target: str | Endpoint = "embedded",
    *,
    api_key: str | Secret | None = None,
    key_mode: str = "ephemeral",
    config: SessionConfig | Mapping[str, Any] | None = None,
    model: str = "gpt-realtime",
    policy: RestartPolicy | str = RestartPolicy.PERMANENT,
    backoff: Backoff = Backoff(),
    max_restarts: int = 10,
    restart_window: float = 60.0,
    key_ttl: int = 600,
    seed: int | None = None,
    server: Any = None,
    connect_params: Mapping[str, Any] | None = None,
    webrtc: bool = False,
    max_sessions: int | None = None,
    rtc_options: Any = None,
    max_restore_bytes: int = DEFAULT_MAX_RESTORE_BYTES,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    token_source: TokenCommand | None = None,
) -> AsyncIterator[Fleet]:
    """Open a fleet; on exit every session is closed and the embedded server stopped.

    ``metrics_port``: serve the fleet's metrics (sessions by state and transport, connects,
    reconnects, replayed and lost turns: ``orchestrator/live_metrics.py``) for Prometheus at
    ``http://metrics_host:PORT/metrics`` (0: a free port; ``fleet.metrics_endpoint.url``) with
    a meter provider of its own, beside whatever OpenTelemetry set-up the application has.

    Limits: ``max_sessions`` (more is a FleetError), ``max_restore_bytes`` per session (what
    is kept to restore a conversation after a reconnect; over it the oldest is evicted and a
    ``dropped`` event with category ``restore`` says so), and per connection
    ``connect_params={"max_message_size": ...}`` (a larger frame closes it with 1009)."""
    try:
        trio.lowlevel.current_task()
    except RuntimeError:  # trio's own error here is "'RunContext' object has no attribute 'runner'"
        raise FleetError("open_fleet runs under trio; from asyncio use "
                         "`async with rtfleet.asyncio.open_fleet(...)`") from None
    if isinstance(config, Mapping):
        config = SessionConfig.from_dict(dict(config))
    secret = Secret(api_key, kind="api_key") if isinstance(api_key, str) else api_key
    async with AsyncExitStack() as stack:
        if webrtc:
            _webrtc_actor()
            from actors.rtc.loop import open_rtc_loop

            await stack.enter_async_context(open_rtc_loop())
        # One HTTP client for the fleet's mints and WebRTC offers, closed once the nursery
        # (every session, the key refresh) has ended.
        http = SharedHttpClient()
        stack.push_async_callback(_close_shielded, http)
        nursery = await stack.enter_async_context(trio.open_nursery())
        endpoint = None if isinstance(target, str) else target
        if endpoint is not None:
            url = endpoint.base
        elif target == "embedded":
            from standin import EmbeddedServer

            if server is None:
                key = secret.reveal() if secret else f"sk-local-{secrets.token_urlsafe(16)}"
                secret = Secret(key, kind="api_key")
                server = EmbeddedServer(api_keys={key})
            url = await nursery.start(server.serve)
        else:
            url = api_base(target)
        keys = KeyManager(
            url, secret, mode=key_mode, ttl=key_ttl,
            session={"type": "realtime", "model": (config.model if config else model)},
            endpoint=endpoint, source=token_source, shared_http=http,
        )
        router = Router()
        supervisor = Supervisor(nursery, keys, random.Random(seed))
        fleet = Fleet(
            nursery, url, keys, router, supervisor, config, model, backoff,
            RestartPolicy(policy), max_restarts, restart_window, dict(connect_params or {}), server,
            webrtc=webrtc, max_sessions=max_sessions, rtc_options=rtc_options,
            max_restore_bytes=max_restore_bytes, endpoint=endpoint,
        )
        nursery.start_soon(refresh_ahead, keys)
        if metrics_port is not None:
            stack.callback((await _open_metrics(nursery, fleet, metrics_port, metrics_host)).shutdown)
        try:
            yield fleet
        finally:
            with trio.CancelScope(shield=True):
                live = [sid for sid, c in supervisor.children.items() if not c.done.is_set()]
                await supervisor.stop_many(live)
            router.close()
            nursery.cancel_scope.cancel()
            if fleet.heap_frozen:  # what the fleet froze may be collected again
                gc.unfreeze()
