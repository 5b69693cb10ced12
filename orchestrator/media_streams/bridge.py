"""The trio shell of the Media Streams bridge: a WebSocket server, one nursery per call.

:class:`MediaStreamsBridge` accepts phone-provider WebSockets (one per call) and, for each, runs
a :class:`_CallShell` that feeds frames to a :class:`~orchestrator.media_streams.call.MediaStreamsCall`
and performs the actions it returns: frames to the provider, client events to the call's fleet
session, fleet ``info`` events, opening and removing the session, closing the socket. The
message flow is described in :mod:`orchestrator.media_streams`.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Mapping
from typing import Any

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from actors.events import ConnectionState, EventKind
from actors.proto.session import SessionConfig
from orchestrator.fleet import FleetError
from orchestrator.media_streams.call import (
    Action, CallPhase, EndCall, MediaStreamsCall, Notice, OpenSession, ToProvider, ToRealtime,
)

__all__ = ["MediaStreamsBridge"]

_log = logging.getLogger("orchestrator.media_streams")

_PCMU = {"type": "audio/pcmu"}


def _pcmu_config(config: SessionConfig | Mapping[str, Any] | None) -> SessionConfig:
    if isinstance(config, Mapping):
        config = SessionConfig.from_dict(dict(config))
    return attrs.evolve(config or SessionConfig(), input_format=_PCMU, output_format=_PCMU)


@attrs.define(eq=False)
class MediaStreamsBridge:
    fleet: Any
    #: the realtime session config of every call (formats are forced to ``audio/pcmu``);
    #: None: the fleet's default config
    config: SessionConfig | Mapping[str, Any] | None = None
    dtmf: str = "info"
    #: drop a finished call's session state from the fleet (long-running bridges)
    forget_sessions: bool = False
    remove_timeout: float = 5.0
    url: str | None = None
    #: by stream sid: the live and finished calls, and their fleet session ids
    calls: dict[str, MediaStreamsCall] = attrs.field(factory=dict)
    sessions: dict[str, str] = attrs.field(factory=dict)
    ended: list[str] = attrs.field(factory=list)
    #: malformed provider frames, all calls together
    malformed: int = 0
    #: set (then replaced) when a call's session is opened / a call ends
    call_started: trio.Event = attrs.field(factory=trio.Event)
    call_ended: trio.Event = attrs.field(factory=trio.Event)
    #: set (then replaced) after every provider frame is handled (for waiting on progress)
    frame_handled: trio.Event = attrs.field(factory=trio.Event)
    _numbers: itertools.count = attrs.field(factory=lambda: itertools.count(1))

    def session_config(self) -> SessionConfig:
        return _pcmu_config(self.config if self.config is not None else self.fleet.default_config)

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, self._handle, host, port, None)
            self.url = f"ws://{host}:{server.port}/"
            task_status.started(self.url)

    async def _handle(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        shell = _CallShell(self, ws, MediaStreamsCall(dtmf=self.dtmf), next(self._numbers))
        try:
            await shell.run()
        except Exception:  # one call's failure never takes the bridge down
            _log.exception("call %s failed", shell._label())


@attrs.define(eq=False)
class _CallShell:
    """One provider connection: reads frames, pumps realtime events, performs actions."""

    bridge: MediaStreamsBridge
    ws: WebSocketConnection
    call: MediaStreamsCall
    number: int
    session_id: str | None = None
    _send_lock: trio.Lock = attrs.field(factory=trio.Lock)
    _nursery: trio.Nursery | None = None

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                while True:
                    try:
                        frame = await self.ws.get_message()
                    except ConnectionClosed:
                        break
                    over = await self._perform(self.call.receive_provider(frame))
                    self.bridge.frame_handled.set()
                    self.bridge.frame_handled = trio.Event()
                    if over:
                        break
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._end("socket closed" if self.call.phase is not CallPhase.ENDED else "stop")
                with trio.move_on_after(2):
                    await self.ws.aclose()

    async def _perform(self, actions: list[Action]) -> bool:
        """Do the actions in order; True when the call is over."""
        bridge, fleet = self.bridge, self.bridge.fleet
        for action in actions:
            if isinstance(action, ToProvider):
                async with self._send_lock:
                    try:
                        await self.ws.send_message(json.dumps(action.message))
                    except ConnectionClosed:
                        return True
            elif isinstance(action, ToRealtime):
                if self.session_id is not None:
                    await fleet.send(self.session_id, action.event)
            elif isinstance(action, Notice):
                if action.event == "media_streams.malformed":
                    bridge.malformed += 1
                    _log.warning("call %s: malformed provider frame: %s", self._label(), action.detail["detail"])
                else:
                    _log.info("call %s: %s %s", self._label(), action.event, action.detail)
                if self.session_id is not None:
                    fleet.links[self.session_id].emit(EventKind.INFO, {"event": action.event, **action.detail})
            elif isinstance(action, OpenSession):
                try:
                    await self._open(action)
                except FleetError as exc:  # e.g. max_sessions: refuse this call, keep the bridge
                    _log.warning("call %s refused: %s", self._label(), exc)
                    self.call.phase = CallPhase.ENDED
                    with trio.move_on_after(2):
                        await self.ws.aclose(1013, "no realtime session available")
                    return True
            elif isinstance(action, EndCall):
                await self._end(action.reason)
                if action.close_code is not None:
                    with trio.move_on_after(2):
                        await self.ws.aclose(action.close_code, action.reason)
                return True
        return False

    async def _open(self, start: OpenSession) -> None:
        bridge, fleet = self.bridge, self.bridge.fleet
        sid = f"ms{self.number:05d}"
        # Subscribe before the session exists, so that no event of it is missed.
        sub = fleet.subscribe(sessions=[sid], kinds=[EventKind.SERVER, EventKind.STATE], buffer=10_000)
        await fleet.add_session(sid, config=bridge.session_config(), policy="permanent")
        self.session_id = sid
        bridge.calls[start.stream_sid] = self.call
        bridge.sessions[start.stream_sid] = sid
        fleet.links[sid].emit(EventKind.INFO, {"event": "media_streams.start", "stream_sid": start.stream_sid,
                                               "call_sid": start.call_sid, "parameters": start.parameters})
        bridge.call_started.set()
        bridge.call_started = trio.Event()
        assert self._nursery is not None
        self._nursery.start_soon(self._pump, sub)

    async def _pump(self, sub: Any) -> None:
        try:
            async for event in sub:
                if event.kind is EventKind.STATE:
                    if event.payload.get("to") == ConnectionState.RECONNECTING:
                        _log.info("call %s: realtime reconnecting; the phone stream is kept", self._label())
                    continue
                if await self._perform(self.call.receive_realtime(event.payload)):
                    return
        finally:
            sub.close()

    async def _end(self, reason: str) -> None:
        sid, self.session_id = self.session_id, None
        if sid is None:
            return
        self.call.phase = CallPhase.ENDED
        _log.info("call %s ended (%s)", self._label(), reason)
        with trio.move_on_after(self.bridge.remove_timeout + 1):
            await self.bridge.fleet.remove_session(sid, forget=self.bridge.forget_sessions)
        self.bridge.ended.append(self.call.stream_sid or sid)
        self.bridge.call_ended.set()
        self.bridge.call_ended = trio.Event()

    def _label(self) -> str:
        return self.call.stream_sid or f"#{self.number}"
