"""The fleet for asyncio programs (the openai SDK, Pipecat, LiveKit Agents): same methods, same
events, as asyncio coroutines::

    import asyncio
    import rtfleet.asyncio

    async def main():
        async with rtfleet.asyncio.open_fleet(config={"output_modalities": ["text"]}) as fleet:
            sid = await fleet.add_session()
            await fleet.wait_connected(sid)
            print(await fleet.ask(sid, "Hello"))
            async with fleet.subscribe(sessions=[sid], types=["response.done"]) as sub:
                await fleet.send(sid, rtfleet.user_text("Again"))
                await fleet.send(sid, {"type": "response.create"})
                print(await sub.receive())

    asyncio.run(main())

The fleet itself stays trio-native: it runs in a trio run hosted next to your loop
(``mode="thread"``, the default: ``trio.run`` in its own thread; or ``mode="guest"``: trio's
guest mode on your loop's thread). Every call is handed to that run, so nothing here calls trio
from asyncio. ``status``/``statuses`` return snapshots (copies), not live objects.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import math
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable, Mapping

import attrs
import outcome
import trio

from actors.events import ConnectionEvent, ConnectionState, EventKind, Transport
from orchestrator.fleet import Fleet, FleetError
from orchestrator.fleet import open_fleet as open_trio_fleet
from orchestrator.router import Subscription
from orchestrator.supervisor import SessionStatus
from rtfleet._bridge import HOSTS, TrioPortal, TrioRun, settle

__all__ = ["AsyncFleet", "AsyncSubscription", "open_fleet"]

_END = object()


class AsyncSubscription:
    """A fleet subscription read from asyncio: ``async for event in sub``, ``await
    sub.receive()``, ``async with``. Events cross from trio in batches, at most ``buffer``
    unread on this side; past that the fleet's usual policy applies (dropped for this
    subscriber, counted in ``dropped`` and reported in-band)."""

    def __init__(self, portal: TrioPortal, fleet: Fleet, filters: dict[str, Any], buffer: int | float):
        self._portal = portal
        self._ready: collections.deque[ConnectionEvent] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._closed = False
        self._unacked = 0
        self._grant_every = 1 if buffer == math.inf else max(1, int(buffer) // 4)
        # trio side (touched only in the trio run)
        self._sub: Subscription | None = None
        self._credit: float = math.inf if buffer == math.inf else int(buffer)
        self._credit_changed = trio.Event()
        portal.schedule(functools.partial(self._open, fleet, filters, buffer))

    @property
    def dropped(self) -> int:
        """Events dropped for this subscriber so far (also reported in-band)."""
        return self._sub.dropped if self._sub is not None else 0

    async def receive(self) -> ConnectionEvent:
        while not self._ready:
            if self._ended or self._closed:
                raise FleetError("the subscription is closed")
            self._waiter = self._portal.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = self._ready.popleft()
        self._unacked += 1
        if self._unacked >= self._grant_every or not self._ready:
            granted, self._unacked = self._unacked, 0
            if not self._ended:
                self._portal.schedule(functools.partial(self._grant, granted))
        return event

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> ConnectionEvent:
        try:
            return await self.receive()
        except FleetError:
            raise StopAsyncIteration from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if not self._ended:
                self._portal.schedule(self._close)
            self._wake()

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- asyncio side ---------------------------------------------------------------------

    def _accept(self, batch: list[Any]) -> None:
        for event in batch:
            if event is _END:
                self._ended = True
            elif not self._closed:
                self._ready.append(event)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- trio side ------------------------------------------------------------------------

    def _open(self, fleet: Fleet, filters: dict[str, Any], buffer: int | float) -> None:
        try:
            self._sub = fleet.subscribe(**filters, buffer=buffer)
            self._portal.pumps.start_soon(self._pump)
        except (RuntimeError, trio.ClosedResourceError):  # the fleet is closing
            self._portal.post(self._accept, [_END])

    def _grant(self, n: int) -> None:
        self._credit += n
        self._credit_changed.set()

    def _close(self) -> None:
        if self._sub is not None:
            self._sub.close()

    async def _pump(self) -> None:
        assert self._sub is not None
        sub, batch = self._sub, []
        try:
            while True:
                while self._credit <= 0 and not self._portal.flushing.is_set():
                    self._credit_changed = trio.Event()
                    async with trio.open_nursery() as either:  # credit, or the fleet has closed
                        either.start_soon(_set_after, self._credit_changed, self._portal.flushing)
                        await self._credit_changed.wait()
                        either.cancel_scope.cancel()
                batch = [await sub.receive()]
                while len(batch) < self._credit or self._portal.flushing.is_set():
                    try:
                        batch.append(sub.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                self._credit -= len(batch)
                self._portal.post(self._accept, batch)
                batch = []
        except trio.EndOfChannel:
            pass
        finally:
            sub.close()
            self._portal.post(self._accept, [*batch, _END])


@attrs.define(eq=False)
class AsyncFleet:
    """The asyncio face of a :class:`orchestrator.fleet.Fleet`; see its methods for details."""

    _portal: TrioPortal
    _fleet: Fleet
    #: the service's base URL (the embedded server's when ``target="embedded"``)
    url: str
    #: how the trio run is hosted: ``"thread"`` or ``"guest"``
    mode: str

    async def add_session(self, session_id: str | None = None, **options: Any) -> str:
        return await self._portal.run(functools.partial(self._fleet.add_session, session_id, **options))

    async def remove_session(self, session_id: str, *, forget: bool = False) -> SessionStatus:
        status = await self._portal.run(functools.partial(self._fleet.remove_session, session_id, forget=forget))
        return attrs.evolve(status)

    async def send(self, session_id: str, event: Mapping[str, Any]) -> None:
        await self._portal.run(self._fleet.send, session_id, dict(event))

    async def stream_audio(self, session_id: str, source: Any, *, frame_bytes: int | None = None,
                           on_frame: Any = None) -> int:
        """Like ``Fleet.stream_audio`` (the process's one audio clock). The source is pulled and
        ``on_frame`` called in the fleet's trio run: neither may touch asyncio objects."""
        return await self._portal.run(functools.partial(
            self._fleet.stream_audio, session_id, source, frame_bytes=frame_bytes, on_frame=on_frame))

    async def freeze_heap(self) -> int:
        """Like ``Fleet.freeze_heap`` (``gc.freeze()`` after a full collection, thawed at the
        fleet's close): process-wide, so the asyncio side's objects alive now are frozen too."""
        return await self._portal.call(self._fleet.freeze_heap)

    async def ask(self, session_id: str, text: str, *, timeout: float = 30.0,
                  response: Mapping[str, Any] | None = None) -> str:
        return await self._portal.run(
            functools.partial(self._fleet.ask, session_id, text, timeout=timeout, response=response))

    def subscribe(
        self,
        *,
        sessions: Iterable[str] | str | None = None,
        transports: Iterable[Transport | str] | None = None,
        kinds: Iterable[EventKind | str] | None = None,
        types: Iterable[str] | None = None,
        buffer: int | float = 1024,
    ) -> AsyncSubscription:
        """Like ``Fleet.subscribe``; it sees every event published after any call made after it."""
        filters = {"sessions": None if sessions is None else list(sessions) if not isinstance(sessions, str)
                   else sessions,
                   "transports": None if transports is None else list(transports),
                   "kinds": None if kinds is None else list(kinds),
                   "types": None if types is None else list(types)}
        return AsyncSubscription(self._portal, self._fleet, filters, buffer)

    async def status(self, session_id: str) -> SessionStatus:
        return await self._portal.call(lambda: attrs.evolve(self._fleet.status(session_id)))

    async def statuses(self) -> dict[str, SessionStatus]:
        return await self._portal.call(
            lambda: {sid: attrs.evolve(s) for sid, s in self._fleet.statuses().items()})

    async def session_ids(self) -> list[str]:
        return await self._portal.call(self._fleet.session_ids)

    async def wait_state(self, session_id: str, *states: ConnectionState | str) -> ConnectionState:
        return await self._portal.run(self._fleet.wait_state, session_id, *states)

    async def wait_connected(self, session_id: str) -> None:
        await self._portal.run(self._fleet.wait_connected, session_id)


@asynccontextmanager
async def open_fleet(target: str = "embedded", *, mode: str = "thread", **options: Any) -> AsyncIterator[AsyncFleet]:
    """``orchestrator.fleet.open_fleet`` for asyncio: the same ``target`` and options; on exit
    every session is closed and the trio run ends (the exit waits for it).

    ``mode``: ``"thread"`` (default) runs trio in its own thread; ``"guest"`` runs it as a
    guest on this loop's thread (not with ``webrtc=True``: trio-asyncio's loop would share the
    thread with yours)."""
    if mode not in HOSTS:
        raise FleetError(f"mode must be one of {sorted(HOSTS)}, not {mode!r}")
    if mode == "guest" and options.get("webrtc"):
        raise FleetError("webrtc=True needs mode='thread' (trio-asyncio's loop cannot share "
                         "the thread of a running asyncio loop)")
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[tuple[TrioPortal, Fleet, trio.Event]] = loop.create_future()
    done: asyncio.Future[outcome.Outcome[None]] = loop.create_future()
    run = TrioRun()

    async def main() -> None:
        with trio.CancelScope() as scope:
            run.attach(scope)
            async with trio.open_nursery() as pumps:
                flushing = trio.Event()
                async with open_trio_fleet(target, **options) as fleet:
                    async with trio.open_nursery() as calls:
                        portal = TrioPortal(loop, trio.lowlevel.current_trio_token(), calls, pumps, flushing)
                        stop = trio.Event()
                        portal.post(settle, ready, outcome.Value((portal, fleet, stop)))
                        await stop.wait()
                        calls.cancel_scope.cancel()
                flushing.set()  # the fleet has closed every subscription: pumps drain and end

    HOSTS[mode](loop, main, lambda result: None if done.done() else done.set_result(result))
    try:
        try:
            await asyncio.wait([ready, done], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            run.cancel()
            await _until_done(done, run)
            raise
        if not ready.done():
            ready.cancel()
            done.result().unwrap()
            raise FleetError("the fleet's trio run ended before it was ready")
        portal, fleet, stop = ready.result()
        try:
            yield AsyncFleet(portal, fleet, fleet.url, mode)
        finally:
            try:
                portal.schedule(stop.set)
            except FleetError:
                pass
            await _until_done(done, run)
        done.result().unwrap()
    finally:
        if not done.done():  # only when asyncio itself is torn down mid-way
            run.cancel()


async def _set_after(target: trio.Event, source: trio.Event) -> None:
    await source.wait()
    target.set()


async def _until_done(done: asyncio.Future[Any], run: TrioRun) -> None:
    """Wait for the trio run to end, even when cancelled (then cancel it and re-raise)."""
    cancelled = False
    while not done.done():
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            cancelled = True
            run.cancel()
    if cancelled:
        raise asyncio.CancelledError
