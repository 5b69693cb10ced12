"""One RTCPeerConnection driven from trio: :class:`RtcPeer` (offerer or answerer), its paced
``oai-events`` data channel, its outgoing :class:`~actors.rtc.tracks.PcmTrack` and the remote
audio decoded to 24 kHz PCM16 mono."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Awaitable, Callable, Iterable, Sequence, TypeVar

import attrs
import trio
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from actors.rtc.ice import _HOST_ADDRESSES
from actors.rtc.inbox import Inbox
from actors.rtc.loop import RtcLoop
from actors.rtc.media import DATA_CHANNEL_LABEL, RtcError
from actors.rtc.tracks import PcmTrack, _Downmixer

__all__ = ["RtcPeer"]

T = TypeVar("T")


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
