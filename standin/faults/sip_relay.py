"""The server's fault plan on a SIP call's sidebands (see ``sip_call.py``, "Faults").

:func:`relay_sideband` sits between a :class:`~.sip_call.SipMediaCall` and one sideband
WebSocket (``run_sideband`` reads the relay's output): it delays each event by the live plan's
``latency_ms`` (from when the call made it) and applies the drops of that plan to this sideband
alone, with the same sans-I/O decisions as a WebSocket connection
(:class:`~.faults.ConnectionFaults`: ``drop_after_events`` counted on this sideband,
``drop_rate``, ``drop_after_s`` from when it attached). A drop closes the sideband's feed
(``run_sideband`` then closes the socket); the call and its RTP go on. Session expiry is the
call's (``SipMediaCall._expiry``), so it is taken out of the plan here.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import trio

from standin.faults.plan import ConnectionFaults, Drop, FaultPlan

__all__ = ["relay_sideband"]

Event = dict[str, Any]


@attrs.define
class _PlanView:
    """The live plan without ``expire_after_s`` (one evolved copy per plan, so that
    ``ConnectionFaults`` sees an unchanged plan as the same object)."""

    source: FaultPlan | None = None
    view: FaultPlan | None = None

    def of(self, plan: FaultPlan) -> FaultPlan:
        if plan is not self.source:
            self.source, self.view = plan, attrs.evolve(plan, expire_after_s=None)
        assert self.view is not None
        return self.view


async def relay_sideband(server: Any, inner: trio.MemoryReceiveChannel[tuple[Event, float]],
                         outer: trio.MemorySendChannel[Event], index: int, sip_stats: Any) -> None:
    """Forward ``inner`` to ``outer`` under the server's live fault plan, until the call's side
    closes ``inner``, the sideband goes away, or a drop fault closes it."""
    faults = ConnectionFaults.for_connection(server.faults, index, trio.current_time(), math.inf)
    plans = _PlanView()
    stats = server.stats.faults

    def dropped(drop: Drop) -> None:
        stats.drops[drop.cause] += 1
        sip_stats.sidebands_dropped += 1

    with inner, outer:
        async with trio.open_nursery() as nursery:

            async def timed() -> None:
                while True:
                    changed = server.faults_changed
                    when, action = faults.next_timed(plans.of(server.faults), trio.current_time())
                    with trio.move_on_at(when) as waited:
                        await changed.wait()
                    if waited.cancelled_caught and isinstance(action, Drop):
                        dropped(action)
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(timed)
            try:
                async for event, made in inner:
                    plan = server.faults
                    if plan.latency_ms > 0:
                        await trio.sleep_until(made + plan.latency_ms / 1000)
                        stats.delayed_events += 1
                    await outer.send(event)
                    _, drop = faults.after_event(plans.of(plan))
                    if drop is not None:
                        dropped(drop)
                        break
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the sideband went away
            nursery.cancel_scope.cancel()
