"""Fan-out of the unified ConnectionEvent stream to subscribers.

Each subscriber owns a bounded trio memory channel and a filter (session ids, transports,
kinds, realtime event types).  ``publish`` is synchronous and never blocks an actor: when a
subscriber's channel is full the event is **dropped for that subscriber and counted**, and
the subscriber receives one ``dropped`` event with the count (``category: "subscriber"``)
as soon as its channel has room again.  A subscriber that must see everything sizes its
buffer for its worst case and checks ``Subscription.dropped`` (always 0 then).

Nothing is lost silently: every drop is counted per subscriber, in ``Router.dropped``, and
reported in-band.

Delivery costs no copy: an event (a frozen value) is handed to every matching subscriber as
it is, and the subscriber lists are tuples replaced when subscriptions change, so publishing
iterates them as they are. A subscriber takes buffered events without a scheduling point per
event (one in every 64 still yields).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import attrs
import trio

from actors.events import ConnectionEvent, EventKind, Transport

__all__ = ["EventFilter", "Router", "Subscription"]


@attrs.frozen
class EventFilter:
    sessions: frozenset[str] | None = None
    transports: frozenset[Transport] | None = None
    kinds: frozenset[EventKind] | None = None
    #: realtime event ``type`` values (for ``server``/``sent`` events)
    types: frozenset[str] | None = None

    @classmethod
    def of(
        cls,
        sessions: Iterable[str] | str | None = None,
        transports: Iterable[Transport | str] | None = None,
        kinds: Iterable[EventKind | str] | None = None,
        types: Iterable[str] | None = None,
    ) -> EventFilter:
        if isinstance(sessions, str):
            sessions = [sessions]
        return cls(
            frozenset(sessions) if sessions is not None else None,
            frozenset(Transport(t) for t in transports) if transports is not None else None,
            frozenset(EventKind(k) for k in kinds) if kinds is not None else None,
            frozenset(types) if types is not None else None,
        )

    def predicate(self) -> Callable[[ConnectionEvent], bool] | None:
        """:meth:`matches` as one function, built for the criteria set (None: every event
        matches); what the router calls per event."""
        if self == _MATCH_ALL:
            return None
        if self.sessions is None and self.transports is None and self.types is None:
            kinds = self.kinds
            assert kinds is not None
            return lambda event: event.kind in kinds  # the common filter: by kind only
        return self.matches

    def matches(self, event: ConnectionEvent) -> bool:
        if self.sessions is not None and event.session_id not in self.sessions:
            return False
        if self.transports is not None and event.transport not in self.transports:
            return False
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.types is not None and event.type not in self.types:
            return False
        return True


_MATCH_ALL = EventFilter()
#: buffered events a subscriber takes in a row before a scheduling point
_RUN = 64


@attrs.define(eq=False)
class Subscription:
    """One subscriber: iterate it (``async for event in sub``) or call ``receive``."""

    filter: EventFilter
    _send: trio.MemorySendChannel[ConnectionEvent]
    _receive: trio.MemoryReceiveChannel[ConnectionEvent]
    _router: Router
    delivered: int = 0
    dropped: int = 0
    #: drops not yet reported in-band
    _unreported: int = 0
    #: events handed over in a row without a scheduling point
    _run: int = 0

    async def receive(self) -> ConnectionEvent:
        """The next event. While events are buffered they are handed over without a
        scheduling point (one in every :data:`_RUN` still checkpoints, so a subscriber that
        is never starved of events still lets the others run and can be cancelled)."""
        if self._run < _RUN:
            try:
                event = self._receive.receive_nowait()
            except trio.WouldBlock:
                pass
            else:
                self._run += 1
                return event
        self._run = 0
        return await self._receive.receive()

    def receive_nowait(self) -> ConnectionEvent:
        return self._receive.receive_nowait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ConnectionEvent:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._router._remove(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _offer(self, event: ConnectionEvent) -> None:
        send = self._send
        try:
            if self._unreported:
                send.send_nowait(
                    attrs.evolve(
                        event,
                        kind=EventKind.DROPPED,
                        payload={"count": self._unreported, "category": "subscriber",
                                 "reason": "subscriber too slow: events dropped for it"},
                    )
                )
                self._unreported = 0
            send.send_nowait(event)
            self.delivered += 1
        except trio.WouldBlock:
            self.dropped += 1
            self._unreported += 1
            self._router.dropped += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._router._remove(self)


@attrs.define
class Router:
    """Subscriptions filtered by session are indexed by session id, so publishing costs
    O(matching subscribers), not O(all subscribers), with one subscriber per session."""

    subscriptions: list[Subscription] = attrs.field(factory=list)
    published: int = 0
    dropped: int = 0
    _broad: list[Subscription] = attrs.field(factory=list, init=False)
    #: tuples, replaced on subscribe/remove: publishing iterates them without a copy
    _by_session: dict[str, tuple[Subscription, ...]] = attrs.field(factory=dict, init=False)
    _broad_snapshot: tuple[tuple[Subscription, Callable[[ConnectionEvent], bool] | None], ...] = \
        attrs.field(default=(), init=False)

    def subscribe(
        self,
        filter: EventFilter | None = None,
        *,
        buffer: int | float = 1024,
    ) -> Subscription:
        size = math.inf if buffer == math.inf else int(buffer)
        send, receive = trio.open_memory_channel[ConnectionEvent](size)
        sub = Subscription(filter or EventFilter(), send, receive, self)
        self.subscriptions.append(sub)
        if sub.filter.sessions is None:
            self._broad.append(sub)
            self._snapshot()
        else:
            for sid in sub.filter.sessions:
                self._by_session[sid] = (*self._by_session.get(sid, ()), sub)
        return sub

    def publish(self, event: ConnectionEvent) -> None:
        self.published += 1
        # Snapshots (rebuilt on subscribe/remove): a subscriber removed while offering (its
        # receiver closed) does not disturb the iteration, and no copy is made per event.
        for sub, match in self._broad_snapshot:
            if match is None or match(event):
                sub._offer(event)
        targeted = self._by_session.get(event.session_id)
        if targeted:
            for sub in targeted:
                if sub.filter.matches(event):
                    sub._offer(event)

    def _snapshot(self) -> None:
        self._broad_snapshot = tuple((sub, sub.filter.predicate()) for sub in self._broad)

    def _remove(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)
            if sub.filter.sessions is None:
                self._broad.remove(sub)
                self._snapshot()
            else:
                for sid in sub.filter.sessions:
                    subs = tuple(s for s in self._by_session.get(sid, ()) if s is not sub)
                    if subs:
                        self._by_session[sid] = subs
                    else:
                        self._by_session.pop(sid, None)
        sub._send.close()

    def close(self) -> None:
        for sub in list(self.subscriptions):
            self._remove(sub)


