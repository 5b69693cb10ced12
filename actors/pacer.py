"""The process-wide audio clock: one task per process paces every real-time audio stream.

Streaming 20 ms frames at real time with one task per session costs a timer, a wake-up and a
task switch per frame per session, and a second switch into the connection's writer; at a few
hundred sessions that is most of the client's CPU. Here one task (:class:`AudioClock`, one
per trio run: :func:`audio_clock`) ticks for all of them, and at each tick writes every due
frame itself, through the session's direct writer (:meth:`actors.link.SessionLink.send_audio_now`:
queued in the session's client core like any append, then written to the socket at once
from the clock's task; a connection that is down queues it, a full socket leaves it to the
connection's writer task).

Phases: the 20 ms frame is cut into ``slots`` ticks (4: every 5 ms). A stream joins the
least loaded slot and sends one frame at each of that slot's ticks, so a fleet's frames are
spread over the frame period instead of fired in the same millisecond, and the clock wakes
``slots`` times per 20 ms however many streams there are (fewer when slots are empty). Why
only 4: waking a sleeping process is the dearest thing the clock does (measured on the 2-core
box, loaded: ~220 us of process CPU per wake-up of a trio program, ~130 us for asyncio, against
a few tens of us per frame written), so 200 wake-ups a second cost a fleet 4.5% of a core and
500 (2 ms slots) 11%; the frames of a slot go out within a millisecond or two of their tick.

Lateness: a frame is *due* at its tick on the grid (``origin + tick * frame / slots``); each
frame's lateness is the time it was handed to the socket minus that, as a receiver would hear
it: ``on_frame(due, sent_at)`` is called for every frame. A clock that falls behind (a stall,
an overloaded process) runs its overdue ticks back to back in one pass (for at most
``catch_up``, a frame period, before it lets the other tasks run and goes on): no frame is
skipped, and their lateness says how late each one went. (Yielding between overdue ticks made
a busy process's clock lose ground at every scheduler pass longer than a tick.)

:meth:`PacedStream.step` is the one place a session's frame is sent; the clock only knows a
stream's ``slot``, ``tick``, ``done`` and ``step(due) -> bool`` (:class:`Paced`), so another
kind of paced stream joins with :meth:`AudioClock.join`: a SIP call's RTP
(:mod:`actors.rtp_shell`) is one.

Sources are iterators of frames (base64 text, ``str``) pulled one per tick, when the frame is
due (so a source may hand over audio it has only just got); the stream ends at the first tick
that finds its source empty. An exception from a source or from sending ends that stream only
(it is raised in the task waiting for it). Sources must not block: they run in the clock's task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, Protocol, TypeVar

import attrs
import trio

from actors.run_service import run_service

if TYPE_CHECKING:
    from actors.link import SessionLink

__all__ = ["FRAME_S", "AudioClock", "Paced", "PacedStream", "audio_clock"]

#: one audio frame (an ``input_audio_buffer.append``) per stream per period
FRAME_S = 0.02


class Paced(Protocol):
    """What the clock drives. :meth:`AudioClock.join` sets ``slot`` and ``tick`` (the tick of
    its first frame); the clock then calls ``step(due)`` at each of the slot's ticks (``due``:
    the tick's time on the grid) and advances ``tick``, until ``step`` returns False (the
    stream ended) or :meth:`AudioClock.remove`, which sets ``done``. ``step`` runs in the
    clock's task: it must not block, and it does not raise (it records what ended it in
    ``error``, where a broken clock records its own failure too)."""

    slot: int
    tick: int
    done: trio.Event
    error: BaseException | None

    def step(self, due: float) -> bool: ...


P = TypeVar("P", bound=Paced)


@attrs.define(eq=False)
class PacedStream:
    """One session's audio on the clock: its frames, its slot and tick, and how it ended."""

    link: "SessionLink"
    frames: Iterator[str]
    on_frame: Callable[[float, float], None] | None
    slot: int = 0
    #: the tick of its next frame (a tick number on the clock's grid)
    tick: int = 0
    sent: int = 0
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None
    #: the trio clock, as the link reads it (the run's clock, without trio.current_time's calls)
    _now: Callable[[], float] = attrs.field(init=False)

    @_now.default
    def _link_clock(self) -> Callable[[], float]:
        return self.link.stamper.monotonic

    def step(self, due: float) -> bool:
        """Send the frame due now (``due`` on the clock's grid); False once the stream has
        ended (its source is empty, or it failed: ``error``). Never raises."""
        try:
            audio = next(self.frames)
        except StopIteration:
            return False
        except Exception as exc:  # the source failed: this stream ends, the clock goes on
            self.error = exc
            return False
        try:
            self.link.send_audio_now(audio)
            self.sent += 1
            if self.on_frame is not None:
                self.on_frame(due, self._now())
        except Exception as exc:
            self.error = exc
            return False
        return True

    async def wait(self) -> int:
        """Until the stream's last frame is sent; the number of frames sent. Raises what ended
        the stream early."""
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.sent


@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)  # no per-assignment hook on the hot path
class AudioClock:
    """One tick for all paced streams; see the module docstring. Start it with :meth:`run`
    (:func:`audio_clock` does, once per trio run)."""

    frame: float = FRAME_S
    slots: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    _streams: list[list[Paced]] = attrs.field(init=False)
    _count: int = attrs.field(default=0, init=False)
    _origin: float | None = attrs.field(default=None, init=False)
    #: the next tick to run
    _tick: int = attrs.field(default=0, init=False)
    #: the time of the tick the clock sleeps towards (inf: it waits for a stream)
    _next_at: float = attrs.field(default=float("inf"), init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    #: the longest a catch-up pass runs overdue ticks back to back before it yields (s)
    catch_up: float = FRAME_S
    #: frames sent, ticks run (figures for benchmarks)
    frames: int = attrs.field(default=0, init=False)
    ticks: int = attrs.field(default=0, init=False)
    #: what stopped the clock's task (a bug); :func:`audio_clock` then starts another
    broken: BaseException | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._streams = [[] for _ in range(self.slots)]

    @property
    def step(self) -> float:
        return self.frame / self.slots

    def __len__(self) -> int:
        return self._count

    def add(self, link: "SessionLink", frames: Iterator[str],
            on_frame: Callable[[float, float], None] | None = None) -> PacedStream:
        """Put a session's audio on the clock: its first frame goes at its slot's next tick."""
        return self.join(PacedStream(link, frames, on_frame))

    def join(self, stream: P) -> P:
        """Put any :class:`Paced` stream on the clock, in the least loaded slot: sets its
        ``slot`` and ``tick`` (its first frame is due at :meth:`time_of` that tick, now or
        within one frame period); returns it."""
        now = trio.current_time()
        if self._origin is None:
            self._origin = now
        step = self.step
        # the first tick not yet run that is not in the past
        first = -int((self._origin - now) // step)
        if self._count:
            first = max(first, self._tick)
        else:
            self._tick = first  # after an idle spell the clock resumes from now
        slots = self.slots
        # the least loaded slot; among those, the soonest
        slot = min(range(slots), key=lambda s: (len(self._streams[s]), (s - first) % slots))
        tick = first + (slot - first) % slots
        stream.slot, stream.tick = slot, tick
        self._streams[slot].append(stream)
        self._count += 1
        if self._origin + tick * step < self._next_at:
            self._changed.set()  # it is due before the tick the clock sleeps towards
        return stream

    def time_of(self, tick: int) -> float:
        """When ``tick`` is due (trio clock); only once a stream has joined."""
        assert self._origin is not None, "no stream has joined"
        return self._origin + tick * self.step

    def remove(self, stream: Paced) -> None:
        """Take a stream off the clock (its waiter was cancelled); nothing more is sent."""
        streams = self._streams[stream.slot]
        if stream in streams:
            streams.remove(stream)
            self._count -= 1
        stream.done.set()

    async def run(self) -> None:
        """Tick for ever (cancel to stop); waits without a timer while no stream is on."""
        slots, streams = self.slots, self._streams
        while True:
            if not self._count:
                self._next_at = float("inf")
                await self._changed.wait()
                self._changed = trio.Event()
                continue
            tick = self._tick
            while not streams[tick % slots]:
                tick += 1
            at = self._origin + tick * self.step  # type: ignore[operator]
            if at > trio.current_time():
                self._next_at = at
                with trio.move_on_at(at):
                    await self._changed.wait()
                self._next_at = float("inf")
                if self._changed.is_set():  # a stream joined that is due sooner: plan again
                    self._changed = trio.Event()
                    continue
            else:
                await trio.lowlevel.checkpoint()  # still behind after a pass: let the others run
            self._run_due(tick)

    def _run_due(self, tick: int) -> None:
        """Run ``tick`` (due now or overdue) and every later tick that is overdue too, back
        to back, until the clock is on time or it has spent ``catch_up`` seconds in this pass.

        One tick per scheduler pass is not enough: a pass of a busy process (a few hundred
        sockets each waking a task) can take longer than a tick's step, and a clock that
        gains one step per pass then falls further behind at every pass until every RTP
        call gives frames up at once. The bound keeps the others running while a clock far
        behind pays its frames back (WebSocket streams send every missed frame)."""
        slots, streams = self.slots, self._streams
        step, origin = self.step, self._origin
        assert origin is not None
        now = trio.current_time()
        until = now + self.catch_up
        while True:
            self._tick = tick + 1
            self._run_tick(tick, origin + tick * step)
            if not self._count:
                return
            tick = self._tick
            while not streams[tick % slots]:
                tick += 1
            now = trio.current_time()
            if origin + tick * step > now or now >= until:
                return

    def _run_tick(self, tick: int, due: float) -> None:
        self.ticks += 1
        slots = self.slots
        ended: list[Paced] = []
        for stream in tuple(self._streams[tick % slots]):
            if stream.tick > tick:
                continue  # joined for a later round of this slot
            stream.tick = tick + slots
            if stream.step(due):
                self.frames += 1
            else:
                ended.append(stream)
        for stream in ended:
            self.remove(stream)


_CLOCK: trio.lowlevel.RunVar[AudioClock] = trio.lowlevel.RunVar("rtfleet_audio_clock")


def audio_clock() -> AudioClock:
    """The process's audio clock (one per trio run), started on first use as a system task."""
    return run_service(_CLOCK, AudioClock, _run_clock, "rtfleet audio clock")


async def _run_clock(clock: AudioClock) -> None:
    try:
        await clock.run()
    except Exception as exc:  # a bug in the clock: every stream's waiter hears it, the run goes on
        clock.broken = exc
        for slot in clock._streams:
            for stream in list(slot):
                stream.error = exc
                clock.remove(stream)
