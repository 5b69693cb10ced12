"""The trio <-> asyncio bridge for aiortc: the one module that imports aiortc and asyncio.

Everything WebRTC in rtfleet (the client actor :mod:`actors.webrtc`, the embedded server's
answerer :mod:`standin.sessions.rtc_answer`) goes through this module, so the rest of the
code stays pure trio.

The pieces::

    open_rtc_loop()        async context manager: one trio-asyncio loop (+ its encoder thread
                           pool) that any number of peer connections share; yields an RtcLoop
    current_rtc_loop()     the RtcLoop opened by the nearest enclosing open_rtc_loop(), or None
    RtcPeer                one RTCPeerConnection: the "oai-events" data channel (paced sends),
                           one sendrecv audio track fed with 24 kHz PCM16 mono, remote audio
                           decoded to 24 kHz PCM16 mono, connection state surfaced
    Inbox                  a pyee-callback -> trio memory channel hop with a drop counter
    host_addresses_for()   the loopback policy for ICE host candidates

Loop sharing (why one loop per process, not per connection)
    A trio-asyncio loop is cheap to *use* but not free to open: a loop nursery, a thread
    pool, and the asyncio event-loop policy that trio-asyncio installs process-wide.  The
    fleet (or the embedded server, or a test fixture) opens **one** ``open_rtc_loop()`` and
    every session uses it.  The loop is found through ``current_rtc_loop()`` (a contextvar:
    trio tasks started from inside the ``async with`` inherit it) or passed explicitly.
    The WebRTC actor falls back to opening a private loop per connection when none is found,
    which works but costs a loop and a pool per session.

Fixes for aiortc under trio-asyncio (see STACK-FACTS.md, "aiortc under trio-asyncio")
    * ``close()`` hangs: trio-asyncio's ``run_in_executor`` runs the job through
      ``trio.to_thread.run_sync`` and loses a cancellation that races with the thread
      finishing, so aiortc's RTP sender task (Opus encoding runs in the executor) never ends
      and ``pc.close()`` waits for it forever.  ``open_rtc_loop`` replaces the loop's
      ``run_in_executor`` with ``asyncio.wrap_future(pool.submit(...))`` on a real
      ``ThreadPoolExecutor``, whose cancellation asyncio handles correctly.  Independently,
      :meth:`RtcPeer.aclose` stops every local track before ``pc.close()`` and bounds the
      whole close with a (shielded) timeout.
    * ICE on loopback: aioice never offers 127.0.0.1 as a host candidate.  While an
      RtcPeer gathers, a contextvar may restrict host addresses; ``host_addresses_for``
      chooses ``("127.0.0.1",)`` when the target host is loopback (``"auto"``), else aioice's
      own list.  The hook is installed once, process-wide, and changes nothing when unset.
    * ``iceServers`` defaults to ``[]`` (aiortc's default adds an off-box STUN server).
    * Data-channel bursts overflow loopback UDP buffers and stall SCTP: sends are paced with
      ``bufferedAmount`` / ``bufferedAmountLowThreshold``.
    * Decoded audio is 48 kHz stereo s16 (Opus); it is converted to 24 kHz mono PCM16.

Threads: one ``rtc-exec`` pool per loop (Opus encoding), plus aiortc's own decoder thread per
receiving track (joined when the peer closes).  Nothing here sleeps in trio; pyee callbacks
run inside the trio-asyncio loop, i.e. in trio's thread, and hand over with ``send_nowait``.
"""

from __future__ import annotations

import asyncio
import contextvars
import fractions
import ipaddress
import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Generic, Iterable, Sequence, TypeVar

import aioice.ice
import attrs
import av
import numpy as np
import trio
import trio_asyncio
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from actors.proto.audio import AudioConverter

__all__ = [
    "RtcError",
    "RtcLoop",
    "open_rtc_loop",
    "current_rtc_loop",
    "Inbox",
    "PcmTrack",
    "RtcPeer",
    "host_addresses_for",
    "is_loopback_host",
    "PCM_RATE",
    "FRAME_MS",
    "DATA_CHANNEL_LABEL",
    "tone",
]

T = TypeVar("T")

#: the realtime protocol's audio: PCM16 little-endian mono at 24 kHz
PCM_RATE = 24_000
#: one outgoing audio frame (aiortc's Opus encoder takes any rate; 20 ms is the Opus ptime)
FRAME_MS = 20
FRAME_SAMPLES = PCM_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
DATA_CHANNEL_LABEL = "oai-events"


class RtcError(Exception):
    """A WebRTC step failed (bad SDP, negotiation, a closed peer); the message says which."""


# -- the loop -------------------------------------------------------------------------------


@attrs.define(eq=False)
class RtcLoop:
    """A trio-asyncio loop shared by many peer connections (see the module docstring)."""

    loop: Any  # trio_asyncio.TrioEventLoop
    executor: ThreadPoolExecutor
    executor_fixed: bool = True
    peers: int = 0

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` as an asyncio coroutine on this loop, from trio.

        Works from any trio task, including one that did not inherit the loop's context
        (e.g. an HTTP request task of a server whose loop was opened elsewhere): the asyncio
        task is created with trio-asyncio's ``current_loop`` set, so the protocol callbacks
        and reader tasks it installs (aioice's UDP endpoints) can call ``get_running_loop()``.
        """
        if trio_asyncio.current_loop.get() is self.loop:
            return await self.loop.run_aio_coroutine(fn(*args))
        token = trio_asyncio.current_loop.set(self.loop)
        try:
            return await self.loop.run_aio_coroutine(fn(*args))
        finally:
            trio_asyncio.current_loop.reset(token)

    def time(self) -> float:
        return self.loop.time()


_CURRENT: contextvars.ContextVar[RtcLoop | None] = contextvars.ContextVar(
    "rtfleet_rtc_loop", default=None
)


def current_rtc_loop() -> RtcLoop | None:
    """The loop of the nearest enclosing :func:`open_rtc_loop` in this task's context."""
    return _CURRENT.get()


def _install_executor_fix(loop: Any, pool: ThreadPoolExecutor) -> None:
    """Make ``loop.run_in_executor`` a plain ``wrap_future(pool.submit(...))``.

    asyncio's ``wrap_future`` ignores a result that arrives after the asyncio future was
    cancelled, so a cancelled ``await loop.run_in_executor(...)`` ends at once.
    """

    def run_in_executor(executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future:
        if loop.is_closed():
            raise RuntimeError("the rtc loop is closed")
        target = executor if isinstance(executor, ThreadPoolExecutor) and not isinstance(
            executor, trio_asyncio.TrioExecutor) else pool
        return asyncio.wrap_future(target.submit(func, *args), loop=loop)

    loop.run_in_executor = run_in_executor


@asynccontextmanager
async def open_rtc_loop(
    *, executor_workers: int = 2, fix_executor: bool = True
) -> AsyncIterator[RtcLoop]:
    """Open one trio-asyncio loop for aiortc, with the executor fix installed.

    ``executor_workers`` bounds the threads that encode Opus for *all* peers on this loop.
    ``fix_executor=False`` keeps trio-asyncio's own ``run_in_executor`` (only to reproduce
    the close hang; never in production).  On exit, the loop's asyncio tasks are cancelled
    (close your peers first) and the pool's threads are joined in a worker thread.
    """
    _install_host_address_hook()
    pool = ThreadPoolExecutor(max_workers=executor_workers, thread_name_prefix="rtc-exec")
    try:
        async with trio_asyncio.open_loop() as loop:
            if fix_executor:
                _install_executor_fix(loop, pool)
            rtc = RtcLoop(loop, pool, fix_executor)
            token = _CURRENT.set(rtc)
            try:
                yield rtc
            finally:
                _CURRENT.reset(token)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(pool.shutdown, True)


# -- ICE host addresses -----------------------------------------------------------------------

_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "rtfleet_ice_host_addresses", default=None
)
_original_get_host_addresses = aioice.ice.get_host_addresses


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _HOST_ADDRESSES.get()
    if chosen is None:
        return _original_get_host_addresses(use_ipv4, use_ipv6)
    return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


def _install_host_address_hook() -> None:
    """Route aioice's host address lookup through ``_HOST_ADDRESSES`` (idempotent)."""
    if aioice.ice.get_host_addresses is not _get_host_addresses:
        aioice.ice.get_host_addresses = _get_host_addresses


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_addresses_for(
    target_host: str | None, policy: str | Sequence[str] | None = "auto"
) -> tuple[str, ...] | None:
    """The ICE host addresses to offer, or ``None`` for aioice's own list.

    ``policy`` is ``"auto"`` (``("127.0.0.1",)`` when ``target_host`` is loopback — aioice
    would otherwise offer only the machine's other interfaces — else ``None``), ``None``
    (aioice's list), or an explicit sequence of addresses.
    """
    if policy is None:
        return None
    if isinstance(policy, str):
        if policy != "auto":
            raise ValueError(f"host address policy must be 'auto', None or addresses: {policy!r}")
        if not is_loopback_host(target_host):
            return None
        host = (target_host or "").strip("[]")
        return ("::1",) if host == "::1" else ("127.0.0.1",)
    return tuple(policy)


# -- callbacks into trio ----------------------------------------------------------------------


@attrs.define(eq=False)
class Inbox(Generic[T]):
    """A bounded trio memory channel fed by pyee callbacks (which cannot await).

    Overflow policy: the *newest* item is dropped and counted in ``dropped`` (a full inbox
    means the trio side is not reading; dropping keeps the asyncio side from growing memory).
    Items pushed after ``close()`` are ignored.
    """

    name: str
    size: int | float
    sender: trio.MemorySendChannel[T] = attrs.field(init=False)
    receiver: trio.MemoryReceiveChannel[T] = attrs.field(init=False)
    dropped: int = 0
    delivered: int = 0

    def __attrs_post_init__(self) -> None:
        self.sender, self.receiver = trio.open_memory_channel(self.size)

    def push(self, item: T) -> bool:
        try:
            self.sender.send_nowait(item)
        except trio.WouldBlock:
            self.dropped += 1
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        self.delivered += 1
        return True

    def close(self) -> None:
        self.sender.close()


# -- audio ------------------------------------------------------------------------------------


class PcmTrack(MediaStreamTrack):
    """An outgoing audio track fed from trio with 24 kHz PCM16 mono bytes.

    ``feed(pcm)`` appends to a buffer (a plain method: trio and the loop share one thread);
    aiortc pulls 20 ms frames through ``recv()``, paced on the loop clock, silence when the
    buffer is empty.  ``max_buffered_ms`` caps the buffer: the oldest audio is dropped and
    counted in ``dropped_bytes``.  ``clear()`` empties it (barge-in); ``drained`` is a trio
    Event set whenever the buffer has been emptied.

    ``dtx=True`` (discontinuous transmission): when the buffer is empty nothing is sent at
    all instead of silence; ``recv()`` waits for the next ``feed`` and the frame timestamps
    jump by the pause (RTP timestamps keep following the wall clock, as with Opus DTX).
    Nothing is encoded, encrypted or decoded while a side is silent, which is most of a
    conversation; a receiver simply gets no audio during the pause.  ``silent_frames`` counts
    the silence frames sent (always 0 with DTX).
    """

    kind = "audio"

    def __init__(self, loop: RtcLoop, *, max_buffered_ms: int = 120_000, dtx: bool = False) -> None:
        super().__init__()
        self._rtc = loop
        self.dtx = dtx
        self._fed: asyncio.Event | None = None
        self._paused = False
        self.silent_frames = 0
        self._buffer = bytearray()
        self._max_bytes = max_buffered_ms * PCM_RATE // 1000 * 2
        self._start: float | None = None
        self._pts = 0
        self._silence = np.zeros((1, FRAME_SAMPLES), dtype=np.int16)
        self._time_base = fractions.Fraction(1, PCM_RATE)
        self._drained = trio.Event()
        self._drained.set()
        self.dropped_bytes = 0
        self.sent_bytes = 0

    @property
    def drained(self) -> trio.Event:
        """Set while nothing is queued (renewed by ``feed``)."""
        return self._drained

    def feed(self, pcm: bytes) -> None:
        if len(pcm) % 2:
            pcm = pcm[:-1]
        if not pcm:
            return
        if self._drained.is_set():
            self._drained = trio.Event()
        self._buffer += pcm
        if self._fed is not None:
            self._fed.set()
        excess = len(self._buffer) - self._max_bytes
        if excess > 0:
            excess += excess % 2
            del self._buffer[:excess]
            self.dropped_bytes += excess

    def clear(self) -> int:
        """Drop the queued audio; returns how many bytes were dropped."""
        n = len(self._buffer)
        self._buffer.clear()
        self._drained.set()
        return n

    def stop(self) -> None:
        super().stop()
        self._drained.set()
        if self._fed is not None:
            self._fed.set()

    @property
    def buffered_ms(self) -> float:
        return len(self._buffer) / 2 / PCM_RATE * 1000

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.dtx and not self._buffer:
            if self._fed is None:
                self._fed = asyncio.Event()
            self._fed.clear()
            self._paused = True
            await self._fed.wait()
            if self.readyState != "live":
                raise MediaStreamError
        now = self._rtc.time()
        if self._start is None:
            self._start = now
            self._paused = False
        elif self._paused:  # resume after a pause: the timestamp jumps to the wall clock
            self._paused = False
            elapsed = math.ceil((now - self._start) * PCM_RATE / FRAME_SAMPLES) * FRAME_SAMPLES
            self._pts = max(self._pts + FRAME_SAMPLES, elapsed)
        else:
            self._pts += FRAME_SAMPLES
            due = self._start + self._pts / PCM_RATE
            if due - now > 0:
                await asyncio.sleep(due - now)
            elif now - due > 0.2:  # fell behind (a stalled loop): do not burst to catch up
                self._start = now - self._pts / PCM_RATE
        if self.readyState != "live":
            raise MediaStreamError
        buf = self._buffer
        if buf:
            chunk = bytes(buf[:FRAME_BYTES])
            del buf[:FRAME_BYTES]
            self.sent_bytes += len(chunk)
            samples = np.frombuffer(chunk, dtype="<i2")
            if len(samples) < FRAME_SAMPLES:
                samples = np.concatenate([samples, np.zeros(FRAME_SAMPLES - len(samples), "<i2")])
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            if not buf:
                self._drained.set()
        else:
            self.silent_frames += 1
            frame = av.AudioFrame.from_ndarray(self._silence, format="s16", layout="mono")
        frame.sample_rate = PCM_RATE
        frame.pts = self._pts
        frame.time_base = self._time_base
        return frame


class _Downmixer:
    """Decoded frames -> 24 kHz mono PCM16 bytes, in chunks of ``chunk_ms``.

    aiortc decodes Opus to 48 kHz stereo s16 (G.711 to 8 kHz mono): integer ratios go
    through the project's sans-I/O :class:`~actors.proto.audio.AudioConverter` (about 3x
    cheaper than libswresample per 20 ms frame); anything else through ``av.AudioResampler``.
    """

    def __init__(self, chunk_ms: int) -> None:
        self._chunk = max(1, chunk_ms * PCM_RATE // 1000) * 2
        self._pending = bytearray()
        self._shape: tuple[str, int, int] | None = None
        self._convert: Callable[[av.AudioFrame], bytes] | None = None

    def _converter_for(self, frame: av.AudioFrame) -> Callable[[av.AudioFrame], bytes]:
        channels = len(frame.layout.channels)
        rate = frame.sample_rate
        if frame.format.name == "s16" and channels in (1, 2) and (
                rate % PCM_RATE == 0 or PCM_RATE % rate == 0):
            converter = AudioConverter(rate, PCM_RATE, src_channels=channels)
            return lambda f: converter.process(f.to_ndarray().reshape(-1))
        resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM_RATE)
        return lambda f: b"".join(o.to_ndarray().tobytes() for o in resampler.resample(f))

    def add(self, frame: av.AudioFrame) -> list[bytes]:
        shape = (frame.format.name, len(frame.layout.channels), frame.sample_rate)
        if shape != self._shape or self._convert is None:
            self._shape, self._convert = shape, self._converter_for(frame)
        self._pending += self._convert(frame)
        chunks: list[bytes] = []
        while len(self._pending) >= self._chunk:
            chunks.append(bytes(self._pending[: self._chunk]))
            del self._pending[: self._chunk]
        return chunks


# -- the peer connection ---------------------------------------------------------------------

_peer_ids = itertools.count(1)


@attrs.define(eq=False)
class RtcPeer:
    """One RTCPeerConnection, driven from trio.

    Offerer (client)::

        peer = RtcPeer(rtc, host_addresses=("127.0.0.1",))
        offer = await peer.create_offer()            # data channel + track, ICE gathered
        await peer.accept_answer(answer_sdp)
        await peer.wait_open()                       # data channel open (or RtcError)

    Answerer (server)::

        peer = RtcPeer(rtc, ...)
        answer = await peer.answer(offer_sdp)        # the data channel arrives from the offer

    Then, from any trio task: ``peer.messages.receiver`` (str | bytes), ``peer.audio.receiver``
    (24 kHz mono PCM16 chunks of ``audio_chunk_ms``), ``peer.states.receiver`` (connection
    state names), ``await peer.send_texts([...])`` (paced), ``peer.feed_audio(pcm)``,
    ``peer.ended`` (set on failed/closed, or when the data channel closes after opening;
    ``end_reason`` says which) and ``await peer.aclose()`` (bounded, idempotent).
    """

    rtc: RtcLoop
    ice_servers: Sequence[str | dict[str, Any]] = ()
    host_addresses: tuple[str, ...] | None = None
    audio: bool = True
    audio_chunk_ms: int = 40
    label: str = DATA_CHANNEL_LABEL
    message_buffer: int = 4096
    audio_buffer: int = 256
    #: pause sending while more than this many bytes are queued in SCTP
    high_water: int = 64 * 1024
    #: resume when the queue falls to this many bytes (bufferedAmountLowThreshold)
    low_water: int = 16 * 1024
    max_play_buffer_ms: int = 120_000
    #: the outgoing track sends nothing while it has nothing to play (see PcmTrack)
    dtx: bool = False
    name: str = attrs.field(factory=lambda: f"rtc{next(_peer_ids)}")

    messages: Inbox[str | bytes] = attrs.field(init=False)
    audio_in: Inbox[bytes] = attrs.field(init=False)
    states: Inbox[str] = attrs.field(init=False)
    opened: trio.Event = attrs.field(factory=trio.Event, init=False)
    ended: trio.Event = attrs.field(factory=trio.Event, init=False)
    end_reason: str = attrs.field(default="", init=False)
    close_timed_out: bool = attrs.field(default=False, init=False)
    close_error: str = attrs.field(default="", init=False)
    #: how many times a send waited for ``bufferedamountlow``
    paced_waits: int = attrs.field(default=0, init=False)
    messages_sent: int = attrs.field(default=0, init=False)
    #: data channels the remote opened with another label (ignored)
    ignored_channels: int = attrs.field(default=0, init=False)
    audio_error: str = attrs.field(default="", init=False)
    connection_state: str = attrs.field(default="new", init=False)
    track: PcmTrack | None = attrs.field(default=None, init=False)
    _pc: Any = attrs.field(default=None, init=False)
    _channel: Any = attrs.field(default=None, init=False)
    _low: asyncio.Event | None = attrs.field(default=None, init=False)
    _audio_tasks: list[asyncio.Task] = attrs.field(factory=list, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _send_lock: trio.Lock = attrs.field(factory=trio.Lock, init=False)

    def __attrs_post_init__(self) -> None:
        self.messages = Inbox(f"{self.name}.messages", self.message_buffer)
        self.audio_in = Inbox(f"{self.name}.audio", self.audio_buffer)
        self.states = Inbox(f"{self.name}.states", 64)

    # -- negotiation (trio side) -------------------------------------------------------------

    async def create_offer(self) -> str:
        """Create the data channel and the audio track, gather ICE, return the offer SDP."""
        return await self._run(self._aio_offer)

    async def accept_answer(self, answer_sdp: str) -> None:
        await self._run(self._aio_accept, answer_sdp)

    async def answer(self, offer_sdp: str) -> str:
        """Take a remote offer, attach the audio track, gather ICE, return the answer SDP."""
        return await self._run(self._aio_answer, offer_sdp)

    async def wait_open(self) -> None:
        """Wait until the data channel is open; RtcError if the peer ends first."""
        if not self.opened.is_set():
            async with trio.open_nursery() as nursery:

                async def watch_end() -> None:
                    await self.ended.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch_end)
                await self.opened.wait()
                nursery.cancel_scope.cancel()
        if not self.opened.is_set():
            raise RtcError(f"peer ended before the data channel opened: {self.end_reason}")

    # -- data ------------------------------------------------------------------------------

    async def send_texts(self, texts: Iterable[str | bytes]) -> list[int]:
        """Send messages in order over the data channel, paced.

        Returns the indexes of the messages *not* sent because they exceed the remote's
        ``max-message-size`` (the others are sent; the connection lives on).  Raises
        RtcError if the channel is not open (or closes while waiting for room).
        """
        batch = list(texts)
        if not batch:
            return []
        async with self._send_lock:  # batches from several tasks go out whole, in turn
            return await self._run(self._aio_send, batch)

    @property
    def buffered_amount(self) -> int:
        return self._channel.bufferedAmount if self._channel is not None else 0

    # -- audio -----------------------------------------------------------------------------

    def feed_audio(self, pcm: bytes) -> None:
        """Queue 24 kHz PCM16 mono for the outgoing track (played in real time)."""
        if self.track is not None:
            self.track.feed(pcm)

    async def wait_audio_sent(self) -> None:
        """Wait until the outgoing track has taken all queued audio, or the peer ended."""
        track = self.track
        if track is None or track.drained.is_set() or self.ended.is_set():
            return
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def watch_end() -> None:
                    await self.ended.wait()
                    scope.cancel()

                nursery.start_soon(watch_end)
                await track.drained.wait()
                scope.cancel()

    # -- close -----------------------------------------------------------------------------

    async def aclose(self, timeout: float = 2.0) -> bool:
        """Stop local tracks, close the connection; bounded by ``timeout`` even if cancelled.

        Returns False if the close did not finish in time (``close_timed_out``).
        """
        if self._closed:
            return not self.close_timed_out
        self._closed = True
        try:
            if self._pc is not None and not self.rtc.loop.is_closed():
                with trio.move_on_after(timeout, shield=True) as scope:
                    try:
                        await self.rtc.run(self._aio_close)
                    except Exception as exc:  # aiortc failing while closing: note it, move on
                        self.close_error = f"{type(exc).__name__}: {exc}"
                self.close_timed_out = scope.cancelled_caught
        finally:
            if self._pc is not None:
                self.rtc.peers -= 1
            self._set_ended("closed locally")
            for inbox in (self.messages, self.audio_in, self.states):
                inbox.close()
        return not self.close_timed_out

    # -- internals: everything below runs on the asyncio loop, except _run ------------------

    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._closed:
            raise RtcError(f"{self.name}: peer is closed")
        try:
            return await self.rtc.run(fn, *args)
        except RtcError:
            raise
        except Exception as exc:  # aiortc/aioice/av errors, mapped at the boundary
            raise RtcError(f"{self.name}: {fn.__name__.removeprefix('_aio_')} failed: "
                           f"{type(exc).__name__}: {exc}") from exc

    def _new_pc(self) -> Any:
        servers = [
            RTCIceServer(**s) if isinstance(s, dict) else RTCIceServer(urls=s)
            for s in self.ice_servers
        ]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.rtc.peers += 1
        self._pc = pc
        pc.on("connectionstatechange", self._on_state)
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        if self.audio:
            self.track = PcmTrack(self.rtc, max_buffered_ms=self.max_play_buffer_ms, dtx=self.dtx)
        return pc

    async def _gather(self, pc: Any, description: Any) -> str:
        token = _HOST_ADDRESSES.set(self.host_addresses)
        try:
            await pc.setLocalDescription(description)
        finally:
            _HOST_ADDRESSES.reset(token)
        if pc.iceGatheringState != "complete":  # aiortc gathers inside setLocalDescription
            raise RtcError(f"ICE gathering ended in state {pc.iceGatheringState}")
        return pc.localDescription.sdp

    async def _aio_offer(self) -> str:
        pc = self._new_pc()
        self._attach_channel(pc.createDataChannel(self.label, ordered=True))
        if self.track is not None:
            pc.addTrack(self.track)
        return await self._gather(pc, await pc.createOffer())

    async def _aio_accept(self, answer_sdp: str) -> None:
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def _aio_answer(self, offer_sdp: str) -> str:
        pc = self._new_pc()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        if self.track is not None:
            pc.addTrack(self.track)
        return await self._gather(pc, await pc.createAnswer())

    async def _aio_send(self, batch: list[str | bytes]) -> list[int]:
        channel = self._channel
        if channel is None:
            raise RtcError("no data channel yet")
        oversized: list[int] = []
        for index, text in enumerate(batch):
            while channel.readyState == "open" and channel.bufferedAmount > self.high_water:
                if self._low is None or self._low.is_set():
                    self._low = asyncio.Event()
                self.paced_waits += 1
                await self._low.wait()
            if channel.readyState != "open":
                raise RtcError(f"data channel is {channel.readyState}; {len(batch) - index} "
                               f"message(s) not sent")
            try:
                channel.send(text)
            except ValueError:  # larger than the remote's max-message-size
                oversized.append(index)
        self.messages_sent += len(batch) - len(oversized)
        return oversized

    async def _aio_close(self) -> None:
        if self.track is not None:
            self.track.stop()
        for task in self._audio_tasks:
            task.cancel()
        await self._pc.close()
        if self._audio_tasks:
            await asyncio.gather(*self._audio_tasks, return_exceptions=True)

    # pyee callbacks (run inside the loop, in trio's thread)

    def _attach_channel(self, channel: Any) -> None:
        self._channel = channel
        channel.bufferedAmountLowThreshold = self.low_water
        channel.on("open", self._on_open)
        channel.on("message", self.messages.push)
        channel.on("close", self._on_channel_close)
        channel.on("bufferedamountlow", self._wake_sender)
        if channel.readyState == "open":
            self._on_open()

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label == self.label and self._channel is None:
            self._attach_channel(channel)
        else:
            self.ignored_channels += 1

    def _on_open(self) -> None:
        self.opened.set()

    def _on_channel_close(self) -> None:
        self._wake_sender()
        if self.opened.is_set():
            self._set_ended("data channel closed")

    def _wake_sender(self) -> None:
        if self._low is not None:
            self._low.set()

    def _on_state(self) -> None:
        state = self._pc.connectionState
        self.connection_state = state
        self.states.push(state)
        if state in ("failed", "closed"):
            self._wake_sender()
            self._set_ended(f"peer connection {state}")

    def _on_track(self, track: Any) -> None:
        if track.kind != "audio":
            return
        self._audio_tasks.append(asyncio.ensure_future(self._pump_audio(track)))

    async def _pump_audio(self, track: Any) -> None:
        # Always drain the remote track (aiortc's queue is unbounded), even if nobody reads.
        down = _Downmixer(self.audio_chunk_ms)
        push = self.audio_in.push
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:  # the track ended (the peer closed)
                return
            try:
                chunks = down.add(frame)
            except Exception as exc:  # a bad frame: note the first failure, keep draining
                if not self.audio_error:
                    self.audio_error = f"{type(exc).__name__}: {exc}"
                    self.states.push("audio-failed")
                continue
            for chunk in chunks:
                push(chunk)

    def _set_ended(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()


def tone(freq: float, ms: int, *, rate: int = PCM_RATE, amplitude: float = 0.3) -> bytes:
    """A sine tone as PCM16 mono bytes (handy for tests and load runs)."""
    n = rate * ms // 1000
    t = np.arange(n) / rate
    return (np.sin(2 * math.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()
