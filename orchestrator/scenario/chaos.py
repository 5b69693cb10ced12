"""The fault timeline of a run, and the embedded server under the runner's control.

:class:`ServerControl` runs the embedded server in its own cancel scope so that a
``kill_server`` fault can stop it (every connection dies at once, new ones are refused) and
start it again on the same port.  :func:`run_faults` fires each :class:`FaultEvent` at its
time (seconds since the run start, on the trio clock) and records a mark for the report.

=====================  ===================================================================
action                 what happens
=====================  ===================================================================
``drop_connections``   ``percent`` of the connected sessions lose their connection abruptly
                       (client side: works against any target)
``expire_keys``        every client secret the embedded server issued expires now; the
                       next (re)connect is refused once and the key manager mints again
``add_latency``        every server event is delayed ``ms`` for ``for`` seconds
``reject_keys``        every authentication fails for ``for`` seconds
``malformed``          the server sends ``count`` malformed frames
``kill_server``        the embedded server stops; it restarts after ``restart_after``
=====================  ===================================================================
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import attrs
import trio

from actors.events import ConnectionState
from orchestrator.fleet import Fleet
from orchestrator.readout import format_number
from orchestrator.scenario.faults import (
    AddLatency,
    DropConnections,
    ExpireKeys,
    FaultEvent,
    KillServer,
    Malformed,
    RejectKeys,
)
from orchestrator.scenario.runmetrics import RunMetrics
from standin import EmbeddedServer

__all__ = ["ServerControl", "change_for", "fault_label", "run_faults", "send_malformed"]


@attrs.define(eq=False)
class ServerControl:
    server: EmbeddedServer
    nursery: trio.Nursery
    host: str = "127.0.0.1"
    port: int = 0
    url: str | None = None
    _scope: trio.CancelScope | None = None
    restarts: int = 0

    async def start(self) -> str:
        scope = trio.CancelScope()

        async def serve(task_status: trio.TaskStatus[str]) -> None:
            with scope:
                await self.server.serve(self.host, self.port, task_status=task_status)

        url = await self.nursery.start(serve)
        self._scope = scope
        if self.url is None:
            self.url = url
            self.port = urlsplit(url).port or 0
            sip = getattr(self.server, "sip", None)
            if self.server.sip_port == 0 and sip is not None:
                # a restart must come back where callers dial, as the HTTP side does
                self.server.sip_port = sip.port
        return url

    @property
    def running(self) -> bool:
        """Whether the server is serving (not killed)."""
        return self._scope is not None

    def kill(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    async def restart(self) -> None:
        with trio.fail_after(10):
            while True:
                try:
                    await self.start()
                    self.restarts += 1
                    return
                except OSError:  # the port is still held by closing sockets
                    await trio.sleep(0.05)


async def run_faults(
    events: Sequence[FaultEvent],
    *,
    fleet: Fleet,
    control: ServerControl | None,
    metrics: RunMetrics,
    rng: random.Random,
    mark: Callable[[str, str], None],
) -> None:
    async with trio.open_nursery() as nursery:
        for event in sorted(events, key=lambda e: e.at):
            delay = event.at - metrics.elapsed()
            if delay > 0:
                await trio.sleep(delay)
            label = fault_label(event.action)
            mark("fault", label)
            metrics.inc("faults.injected")
            await _apply(event.action, fleet, control, rng, nursery, metrics)


async def _apply(action: Any, fleet: Fleet, control: ServerControl | None, rng: random.Random,
                 nursery: trio.Nursery, metrics: RunMetrics) -> None:
    server = control.server if control is not None else None
    if isinstance(action, DropConnections):
        connected = [sid for sid, link in fleet.links.items() if link.state is ConnectionState.CONNECTED]
        count = round(len(connected) * action.percent / 100)
        for sid in rng.sample(connected, count):
            fleet.links[sid].abort_connection()
        metrics.inc("faults.dropped_connections", count)
        return
    if server is None or control is None:  # the loader allows only drops against remote targets
        raise RuntimeError(f"{type(action).__name__} needs the embedded server")
    if isinstance(action, ExpireKeys):
        server.secrets.expire_all(server.clock())
    elif isinstance(action, AddLatency):
        change_for(nursery, server, action.duration, latency_ms=float(action.ms))
    elif isinstance(action, RejectKeys):
        change_for(nursery, server, action.duration, reject_keys=True)
    elif isinstance(action, Malformed):
        nursery.start_soon(send_malformed, server, action.count)
    elif isinstance(action, KillServer):
        control.kill()
        restart_after = action.restart_after
        if restart_after is None:
            return  # it stays down

        async def restart() -> None:
            await trio.sleep(restart_after)
            await control.restart()

        nursery.start_soon(restart)


def change_for(nursery: trio.Nursery, server: EmbeddedServer, duration: float | None, **changes: Any) -> None:
    before = server.faults
    server.faults = attrs.evolve(before, **changes)
    if duration is None:
        return  # until the end of the run

    async def revert() -> None:
        await trio.sleep(duration)
        server.faults = attrs.evolve(server.faults, **{k: getattr(before, k) for k in changes})

    nursery.start_soon(revert)


async def send_malformed(server: EmbeddedServer, count: int) -> None:
    start = sum(server.stats.faults.malformed.values())
    server.faults = attrs.evolve(server.faults, malformed_every=1)
    try:
        with trio.move_on_after(10):
            while sum(server.stats.faults.malformed.values()) < start + count:
                await trio.sleep(0.01)
    finally:
        server.faults = attrs.evolve(server.faults, malformed_every=None)


def fault_label(action: Any) -> str:
    fields = attrs.asdict(action) if attrs.has(type(action)) else {}
    name = getattr(action, "action", None) or type(action).__name__
    details = ", ".join(f"{k}={format_number(v) if isinstance(v, float) else v}"
                        for k, v in fields.items() if v is not None)
    return f"{name}({details})" if details else str(name)
