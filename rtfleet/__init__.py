"""rtfleet: run and supervise fleets of realtime voice sessions.

The public API in one place. The fleet is trio-native::

    from rtfleet import open_fleet, user_text          # under trio.run

and has an asyncio entry point with the same methods as asyncio coroutines::

    import rtfleet.asyncio
    async with rtfleet.asyncio.open_fleet() as fleet:   # under asyncio.run
        sid = await fleet.add_session()
        await fleet.wait_connected(sid)
        print(await fleet.ask(sid, "Hello"))
"""

from actors.events import ConnectionEvent, ConnectionState, EventKind, Transport
from actors.proto.session import SessionConfig
from orchestrator.fleet import (
    AnswerTimeout,
    Fleet,
    FleetError,
    answer_text,
    available_transports,
    open_fleet,
    user_text,
)
from orchestrator.policy import Backoff, RestartPolicy
from orchestrator.router import EventFilter, Subscription
from orchestrator.supervisor import SessionStatus

from rtfleet import asyncio  # noqa: E402  (rtfleet.asyncio; not in __all__: it would shadow the stdlib)

__all__ = [
    "AnswerTimeout",
    "Backoff",
    "ConnectionEvent",
    "ConnectionState",
    "EventFilter",
    "EventKind",
    "Fleet",
    "FleetError",
    "RestartPolicy",
    "SessionConfig",
    "SessionStatus",
    "Subscription",
    "Transport",
    "answer_text",
    "available_transports",
    "open_fleet",
    "user_text",
]
