"""The supervisor: one nursery per fleet, one supervised loop per session.

Each session runs ``_supervise`` in the fleet nursery under its own cancel scope.  The loop
gets a credential from the :class:`~orchestrator.keys.KeyManager` (fresh when needed),
runs one actor incarnation (one connection), and when it ends decides, OTP style:

========================  ===============================================================
actor exit                decision
========================  ===============================================================
normal (1000)             permanent: reconnect; transient/temporary: ``closed``
dropped (1001/1006/…)     reconnect after full-jitter backoff (temporary: ``error``)
recycle (deadline)        reconnect at once, no backoff, not counted as a restart
auth refused              ephemeral keys: mint a new secret and retry once, then
                          ``error`` ("authentication rejected"); direct key: ``error``
fatal close (4xxx, 1008)  ``error``
crash (actor raised)      ``error`` then restart, until the restart intensity is exceeded
========================  ===============================================================

Every restart is counted in the session's :class:`~orchestrator.policy.RestartIntensity`
window (trio clock); past it the session ends in ``error`` and the fleet goes on.  An
exception inside one session's loop is caught there: one session never cancels another.
"""

from __future__ import annotations

import random
import time
from typing import Any, Awaitable, Callable, Protocol

import attrs
import trio

from actors.credentials import Secret, redact
from actors.events import ConnectionState, EventKind
from actors.exits import ActorExit, ExitReason
from actors.link import SessionLink
from actors.websocket import ConnectParams
from orchestrator.keys import KeyManager, KeyManagerError, KeyMintError
from orchestrator.policy import Backoff, RestartIntensity, RestartPolicy, should_restart

__all__ = ["Actor", "SessionSpec", "SessionStatus", "Supervisor"]

S = ConnectionState


class Actor(Protocol):
    def __call__(
        self, link: SessionLink, params: ConnectParams, *, task_status: Any = ...
    ) -> Awaitable[ActorExit]: ...


@attrs.frozen
class SessionSpec:
    actor: Callable[..., Awaitable[ActorExit]]
    params: ConnectParams
    policy: RestartPolicy = RestartPolicy.PERMANENT
    backoff: Backoff = Backoff()
    max_restarts: int = 10
    restart_window: float = 60.0


@attrs.define
class SessionStatus:
    session_id: str
    state: ConnectionState = S.CONNECTING
    connects: int = 0
    reconnects: int = 0
    restarts: int = 0
    recycles: int = 0
    last_error: str | None = None
    last_exit: ActorExit | None = None
    #: wall-clock epoch seconds (``time.time()``) of the current connection's start; None when down
    connected_since: float | None = None
    finished: bool = False


class _ConnectedStatus:
    """The ``task_status`` given to an actor: ``started()`` means *connected*."""

    def __init__(self, on_connected: Callable[[], None]):
        self._on_connected = on_connected
        self.connected_at: float | None = None

    def started(self, value: object = None) -> None:
        self.connected_at = trio.current_time()
        self._on_connected()


@attrs.define(eq=False)
class _Child:
    link: SessionLink
    spec: SessionSpec
    status: SessionStatus
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    stopping: bool = False


@attrs.define(eq=False)
class Supervisor:
    nursery: trio.Nursery
    keys: KeyManager
    rng: random.Random = attrs.field(factory=random.Random)
    children: dict[str, _Child] = attrs.field(factory=dict)
    #: reconnects per second the fleet aims not to exceed after a mass drop: the jitter window
    #: of a reconnect is at least (sessions reconnecting / herd_rate) seconds
    herd_rate: float = 200.0
    reconnecting: int = 0
    _next_admission: float = attrs.field(default=-1e18, init=False)

    def start(self, link: SessionLink, spec: SessionSpec) -> SessionStatus:
        if link.session_id in self.children and not self.children[link.session_id].done.is_set():
            raise ValueError(f"session {link.session_id} already exists")
        child = _Child(link, spec, SessionStatus(link.session_id))
        self.children[link.session_id] = child
        link.emit(EventKind.STATE, {"from": None, "to": S.CONNECTING.value, "reason": "started"})
        self.nursery.start_soon(self._supervise, child, name=f"session:{link.session_id}")
        return child.status

    async def stop(self, session_id: str, *, timeout: float = 5.0) -> None:
        """Close the session cleanly (close frame 1000); cancel it if that takes too long."""
        await self.stop_many([session_id], timeout=timeout)

    async def stop_many(self, session_ids: list[str], *, timeout: float = 5.0) -> None:
        children = [self.children[sid] for sid in session_ids]
        for child in children:
            child.stopping = True
            child.link.stop_requested.set()
            if child.link.state is not S.CONNECTED:
                child.scope.cancel()
        with trio.move_on_after(timeout):
            for child in children:
                await child.done.wait()
        for child in children:
            child.scope.cancel()
        for child in children:
            await child.done.wait()

    def status(self, session_id: str) -> SessionStatus:
        return self.children[session_id].status

    # -- the supervised loop --------------------------------------------------------------

    async def _supervise(self, child: _Child) -> None:
        link, spec, status = child.link, child.spec, child.status
        try:
            with child.scope:
                await self._loop(child)
        except Exception as exc:  # a bug in the loop itself: contain it to this session
            status.last_error = f"supervisor error: {type(exc).__name__}: {exc}"
            self._final(child, S.ERROR, status.last_error)
        finally:
            if child.stopping and link.state is not S.CLOSED:
                self._to(child, S.CLOSED, "removed")
            status.state = link.state
            status.finished = True
            status.connected_since = None
            child.done.set()
        del spec

    async def _loop(self, child: _Child) -> None:
        link, spec, status = child.link, child.spec, child.status
        intensity = RestartIntensity(spec.max_restarts, spec.restart_window)
        attempt = 0
        force_key = False
        auth_retried = False
        while True:
            credential = await self._credential(child, force_key)
            if credential is None:  # final error already set
                return
            force_key = False
            connected = _ConnectedStatus(lambda: self._on_connected(child))
            params = attrs.evolve(spec.params, credential=credential)
            try:
                exit = await spec.actor(link, params, task_status=connected)
            except Exception as exc:
                exit = ActorExit(ExitReason.CRASH, None,
                                 redact(f"{type(exc).__name__}: {exc}", credential))
            status.last_exit = exit
            status.connected_since = None
            if child.stopping:
                return
            now = trio.current_time()
            if connected.connected_at is not None:
                auth_retried = False
                if now - connected.connected_at >= spec.backoff.stable_after:
                    attempt = 0

            if exit.reason is ExitReason.RECYCLE:
                status.recycles += 1
                self._to(child, S.RECONNECTING, exit.detail)
                continue
            if exit.reason is ExitReason.AUTH:
                if self.keys.refreshable and not auth_retried:  # a new secret or token
                    auth_retried = True
                    force_key = True
                else:
                    status.last_error = exit.detail or "authentication rejected"
                    self._final(child, S.ERROR, status.last_error)
                    return
            elif not should_restart(spec.policy, exit):
                if exit.abnormal:
                    status.last_error = _describe(exit)
                    self._final(child, S.ERROR, status.last_error)
                else:
                    self._final(child, S.CLOSED, _describe(exit))
                return
            if exit.reason is ExitReason.CRASH:
                status.last_error = _describe(exit)
                self._to(child, S.ERROR, status.last_error)
            if not intensity.allow(now):
                status.last_error = (
                    f"restart intensity exceeded ({spec.max_restarts} restarts in "
                    f"{spec.restart_window:g}s); last: {_describe(exit)}"
                )
                self._final(child, S.ERROR, status.last_error)
                return
            status.restarts += 1
            self._to(child, S.RECONNECTING, _describe(exit))
            window = self.reconnecting / self.herd_rate if self.herd_rate > 0 else 0.0
            delay = 0.0 if force_key else spec.backoff.delay(attempt, self.rng, window=window)
            attempt += 1
            if delay > 0:
                await trio.sleep(delay)
            await self._admit()

    async def _credential(self, child: _Child, force: bool) -> Secret | None:
        """A credential, retrying mint failures with backoff inside the intensity budget."""
        spec, status = child.spec, child.status
        attempt = 0
        while True:
            try:
                return await self.keys.credential(force=force)
            except KeyMintError as exc:
                status.last_error = str(exc)
                # Refusals (401/403) are retried too: the key service may be failing for a
                # while; the attempt budget bounds it.
                if attempt >= spec.max_restarts:
                    self._final(child, S.ERROR, str(exc))
                    return None
                link = child.link
                link.emit(EventKind.INFO, {"key_error": str(exc), "attempt": attempt})
                if link.state is S.CONNECTING:
                    self._to(child, S.RECONNECTING, "key service unavailable")
                await trio.sleep(spec.backoff.delay(attempt, self.rng))
                attempt += 1
            except KeyManagerError as exc:
                status.last_error = str(exc)
                self._final(child, S.ERROR, str(exc))
                return None

    async def _admit(self) -> None:
        """Reconnects leave at most ``herd_rate`` per second (a paced queue on the trio clock):
        after a mass drop the service sees a steady stream, not a thundering herd."""
        if self.herd_rate <= 0:
            return
        now = trio.current_time()
        slot = max(now, self._next_admission)
        self._next_admission = slot + 1.0 / self.herd_rate
        if slot > now:
            await trio.sleep_until(slot)

    def _on_connected(self, child: _Child) -> None:
        status = child.status
        status.connects += 1
        if status.connects > 1:
            status.reconnects += 1
        status.connected_since = time.time()
        self._to(child, S.CONNECTED, "session.created")

    def _to(self, child: _Child, target: ConnectionState, reason: str) -> None:
        link = child.link
        if link.state is not target:
            if link.state is S.RECONNECTING:
                self.reconnecting -= 1
            elif target is S.RECONNECTING:
                self.reconnecting += 1
            link.set_state(target, reason)
        child.status.state = link.state

    def _final(self, child: _Child, target: ConnectionState, reason: str) -> None:
        self._to(child, target, reason)


def _describe(exit: ActorExit) -> str:
    parts = [exit.reason.value]
    if exit.code is not None:
        parts.append(f"code {exit.code}")
    if exit.detail:
        parts.append(exit.detail)
    return ": ".join(parts[:1]) + (" (" + ", ".join(parts[1:]) + ")" if len(parts) > 1 else "")
