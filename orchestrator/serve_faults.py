"""Faults for ``rtfleet serve``: a fault file's timeline, and the control path's faults now.

``rtfleet serve --faults FILE`` (``scenario/fault_file.py``) sets the file's all-run-long
faults on the server's plan and fires its timeline (``at`` counted from when the server first
listens; ``repeat`` starts it over). ``POST /_rtfleet/faults`` (``standin/control.py``) hands
one action to :meth:`ServeFaults.control`, applied at once. The vocabulary is the scenario's
(``scenario/faults.py``), applied to the server since there is no fleet here:

=====================  ===================================================================
``drop_connections``   ``percent`` of the live WebSocket connections drop (as the plan's
                       drops: abort, the client sees 1006, unless ``server.close_code``),
                       and as many of the WebRTC/SIP calls are hung up
``expire_keys``        every client secret issued so far expires now
``add_latency``        every server event is ``ms`` later, for ``for`` (or until changed)
``reject_keys``        every authentication fails, for ``for`` (the control path excepted)
``malformed``          the next ``count`` server events are followed by a malformed frame
``kill_server``        the server stops listening and every connection dies; it comes back
                       on the same port after ``restart_after`` (or stays down)
=====================  ===================================================================
"""

from __future__ import annotations

import random
from typing import Any, Awaitable, Callable

import attrs
import trio

from orchestrator.scenario.chaos import ServerControl, change_for, fault_label, send_malformed
from orchestrator.scenario.errors import InvalidField
from orchestrator.scenario.fault_file import FaultFile, parse_fault_action
from orchestrator.scenario.faults import (AddLatency, DropConnections, ExpireKeys, KillServer,
                                          Malformed, RejectKeys)
from standin import FaultPlan

__all__ = ["ServeFaults"]

Later = Callable[[], Awaitable[None]]


@attrs.define(eq=False)
class ServeFaults:
    """The faults of one ``rtfleet serve``: ``control`` is the server's control hook."""

    control_of_server: ServerControl
    nursery: trio.Nursery  # where timed reverts and restarts run
    rng: random.Random = attrs.field(factory=random.Random)
    #: told one line per applied fault (``rtfleet serve`` prints it; nothing is kept)
    announce: Callable[[str], None] = lambda _line: None

    @classmethod
    def for_file(cls, control: ServerControl, nursery: trio.Nursery, faults: FaultFile | None,
                 announce: Callable[[str], None] = lambda _line: None) -> ServeFaults:
        seed = faults.seed if faults is not None else 0
        if faults is not None and faults.server.active:
            control.server.faults = FaultPlan(**faults.server.plan_fields(seed))
        return cls(control, nursery, random.Random(seed), announce=announce)

    async def run_timeline(self, faults: FaultFile) -> None:
        """Fire the file's timeline (again every ``repeat`` seconds, when given)."""
        events = sorted(faults.faults, key=lambda e: e.at)
        if not events:
            return
        start = trio.current_time()
        while True:
            for event in events:
                await trio.sleep_until(start + event.at)
                _, later = await self.apply(event.action)
                if later is not None:
                    await later()
            if faults.repeat is None:
                return
            start += faults.repeat

    async def control(self, body: Any) -> tuple[dict[str, Any], Later | None]:
        """The control path's hook: apply one posted action now. Returns the answer and what
        to do once it is sent (a kill); raises ``ValueError`` with the message for a bad body."""
        try:
            action = parse_fault_action(body)
        except InvalidField as exc:
            raise ValueError(str(exc)) from None
        return await self.apply(action)

    async def apply(self, action: Any) -> tuple[dict[str, Any], Later | None]:
        control = self.control_of_server
        server = control.server
        label = fault_label(action)
        done: dict[str, Any] = {"applied": label}
        later: Later | None = None
        if isinstance(action, DropConnections):
            done["dropped"] = await server.drop_connections(action.percent, self.rng)
        elif isinstance(action, ExpireKeys):
            done["expired_secrets"] = server.secrets.expire_all(server.clock())
        elif isinstance(action, AddLatency):
            change_for(self.nursery, server, action.duration, latency_ms=float(action.ms))
        elif isinstance(action, RejectKeys):
            change_for(self.nursery, server, action.duration, reject_keys=True)
        elif isinstance(action, Malformed):
            self.nursery.start_soon(send_malformed, server, action.count)
        elif isinstance(action, KillServer):
            later = self._killer(action.restart_after)
        self.announce(f"fault: {label}" + "".join(f", {k} {v}" for k, v in done.items()
                                                   if k != "applied"))
        return done, later


    def _killer(self, restart_after: float | None) -> Later:
        control = self.control_of_server

        async def kill() -> None:
            control.kill()
            if restart_after is None:
                return

            async def restart() -> None:
                await trio.sleep(restart_after)
                if control.running:  # an earlier kill's restart came first
                    return
                try:
                    await control.restart()
                except (OSError, trio.TooSlowError) as exc:  # the port was taken meanwhile
                    self.announce(f"fault: the server could not restart: {exc}")
                    return
                self.announce("fault: the server is back")

            self.nursery.start_soon(restart)

        return kill
