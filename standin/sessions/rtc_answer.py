"""The embedded server's WebRTC answerer: SDP offer in, SDP answer and a live call out.

Wiring ``POST /v1/realtime/calls`` (the HTTP app owns auth, status codes and headers)::

    # once, around the server: one asyncio loop shared by every call (see actors.rtc)
    async with open_rtc_loop() as rtc:
        ...
        # in the HTTP handler, after checking the ek_ secret and Content-Type application/sdp
        answer_sdp, call = await answer_offer(
            offer_sdp,
            rtc_loop=rtc,                      # or leave out inside open_rtc_loop()'s context
            nursery=server_nursery,            # a nursery that outlives the HTTP request
            on_open=start_session,             # data channel open: send session.created now
            on_message=handle_client_event,    # each data-channel message (JSON text)
            on_audio=handle_input_audio,       # decoded caller audio, 24 kHz mono PCM16
            on_close=forget_call,              # (call, reason) once, after the call ended
        )
        # respond 201, body answer_sdp (application/sdp),
        # header Location: /v1/realtime/calls/{call.call_id}

    # from the model, at any time
    await call.send_event({"type": "response.output_audio_transcript.delta", ...})
    call.play(pcm16_24k)                       # queued on the outgoing track, played in real time
    await call.wait_played()                   # the queue is empty: output_audio_buffer.stopped
    call.clear_audio()                         # output_audio_buffer.clear / barge-in
    await call.close()                         # bounded; also what happens when the peer leaves

Callback signatures: ``on_open(call)``, ``on_message(call, text: str | bytes)``,
``on_audio(call, pcm: bytes)`` (``audio_chunk_ms`` chunks, 20 ms by default),
``on_close(call, reason: str)``.
Callbacks may be plain functions or async functions; each kind is called in order from one
task (``on_message`` and ``on_audio`` from two different tasks, so a slow audio handler does
not hold events up).  Exceptions from a callback close the call and propagate into the
nursery that runs it, like any other bug.  Without a ``nursery`` the caller runs
``await call.run()`` itself (or reads ``call.messages`` / ``call.audio`` when no callbacks
are given).

Errors: :class:`~actors.rtc.media.RtcError` when the offer cannot be answered (not SDP, no
``oai-events`` channel or audio, ICE gathering failure): answer ``400`` with its message.
``send_event`` raises ``RtcError`` once the call has ended (the peer may leave at any time:
model code should catch it and stop), or for an event larger than the peer's
``max-message-size`` (nothing of that event is sent; the call goes on).

ICE host addresses: ``host_addresses="auto"`` offers only ``127.0.0.1`` when every candidate
in the offer is a loopback address (an in-process or same-machine client; aioice never
offers loopback by itself), otherwise aioice's own list; or pass addresses, or ``None``.
"""

from __future__ import annotations

import inspect
import json
import re
import secrets
from typing import Any, Callable, Sequence

import attrs
import trio

from actors.rtc.ice import host_addresses_for, is_loopback_host
from actors.rtc.loop import RtcLoop, current_rtc_loop
from actors.rtc.media import DATA_CHANNEL_LABEL, RtcError
from actors.rtc.peer import RtcPeer

__all__ = ["RtcCall", "answer_offer", "host_addresses_for_caller", "offer_candidate_hosts",
           "new_call_id", "RtcError"]

Callback = Callable[..., Any]
_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ", re.MULTILINE)


def new_call_id() -> str:
    return f"rtc_{secrets.token_hex(12)}"


def offer_candidate_hosts(sdp: str) -> list[str]:
    """The connection addresses of the ICE candidates in an SDP."""
    return _CANDIDATE.findall(sdp)


def host_addresses_for_caller(offer_sdp: str, caller_host: str | None) -> str | tuple[str, ...]:
    """The ICE host policy for an offer that came over HTTP from ``caller_host``.

    A caller on this machine (its request came over loopback) whose offer has a loopback
    candidate is answered with loopback only, so the media stays on the loopback interface
    even when the caller also offered other interfaces (a browser started with
    ``--allow-loopback-in-peer-connection``); anything else is ``"auto"``.
    """
    hosts = offer_candidate_hosts(offer_sdp)
    loopback = [h for h in hosts if is_loopback_host(h)]
    if is_loopback_host(caller_host) and loopback:
        return ("127.0.0.1",) if any(":" not in h for h in loopback) else ("::1",)
    return "auto"


def _auto_host_addresses(offer_sdp: str, policy: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if policy != "auto":
        return host_addresses_for(None, policy)
    hosts = offer_candidate_hosts(offer_sdp)
    if hosts and all(is_loopback_host(h) for h in hosts):
        return ("::1",) if all(":" in h for h in hosts) else ("127.0.0.1",)
    return None


async def _call(fn: Callback | None, *args: Any) -> None:
    if fn is None:
        return
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


@attrs.define(eq=False)
class RtcCall:
    """One answered WebRTC call.  See the module docstring for the life cycle."""

    call_id: str
    peer: RtcPeer
    on_open: Callback | None = None
    on_message: Callback | None = None
    on_audio: Callback | None = None
    on_close: Callback | None = None
    #: give up if the data channel has not opened this long after the answer
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    closed: trio.Event = attrs.field(factory=trio.Event, init=False)
    end_reason: str = attrs.field(default="", init=False)
    events_sent: int = attrs.field(default=0, init=False)
    _running: bool = attrs.field(default=False, init=False)

    # -- what the server reads ------------------------------------------------------------

    @property
    def messages(self) -> trio.MemoryReceiveChannel[str | bytes]:
        """Data-channel messages (when no ``on_message`` callback runs)."""
        return self.peer.messages.receiver

    @property
    def audio(self) -> trio.MemoryReceiveChannel[bytes]:
        """Caller audio, 24 kHz mono PCM16 chunks (when no ``on_audio`` callback runs)."""
        return self.peer.audio_in.receiver

    @property
    def is_open(self) -> bool:
        return self.peer.opened.is_set() and not self.peer.ended.is_set()

    async def wait_open(self) -> None:
        """Wait for the data channel; RtcError if the call ended first."""
        await self.peer.wait_open()

    # -- what the server writes -----------------------------------------------------------

    async def send_event(self, event: dict[str, Any]) -> None:
        """One server event as compact JSON over the data channel (paced)."""
        await self.send_events([event])

    async def send_events(self, events: Sequence[dict[str, Any]]) -> None:
        texts = [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in events]
        oversized = await self.peer.send_texts(texts)
        self.events_sent += len(texts) - len(oversized)
        if oversized:
            kinds = ", ".join(str(events[i].get("type")) for i in oversized)
            raise RtcError(f"event(s) too large for the data channel, not sent: {kinds}")

    def play(self, pcm: bytes) -> float:
        """Queue 24 kHz mono PCM16 on the outgoing track; returns the queued milliseconds."""
        self.peer.feed_audio(pcm)
        return self.queued_audio_ms

    @property
    def queued_audio_ms(self) -> float:
        return self.peer.track.buffered_ms if self.peer.track is not None else 0.0

    async def wait_played(self) -> None:
        """Wait until everything given to :meth:`play` has gone out (or the call ended)."""
        await self.peer.wait_audio_sent()

    def clear_audio(self) -> float:
        """Drop the queued output audio (barge-in); returns the milliseconds dropped."""
        dropped = self.peer.track.clear() if self.peer.track is not None else 0
        return dropped / 48.0

    async def close(self, timeout: float | None = None) -> bool:
        """Close the call (bounded, idempotent); False if the close timed out."""
        self.end_reason = self.end_reason or "closed by the server"
        ok = await self.peer.aclose(self.close_timeout if timeout is None else timeout)
        self._finish(self.end_reason or "closed by the server")
        return ok

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> str:
        """Deliver callbacks until the call ends; always closes the call.  Returns the reason."""
        if self._running:
            raise RuntimeError(f"call {self.call_id} is already running")
        self._running = True
        try:
            with trio.move_on_after(self.open_timeout) as opening:
                try:
                    await self.peer.wait_open()
                except RtcError as exc:
                    self.end_reason = str(exc)
                    return self.end_reason
            if opening.cancelled_caught:
                self.end_reason = "data channel did not open in time"
                return self.end_reason
            await _call(self.on_open, self)
            async with trio.open_nursery() as nursery:
                if self.on_message is not None:
                    nursery.start_soon(self._deliver, self.peer.messages.receiver, self.on_message)
                if self.on_audio is not None:
                    nursery.start_soon(self._deliver, self.peer.audio_in.receiver, self.on_audio)
                await self.peer.ended.wait()
                nursery.cancel_scope.cancel()
            self.end_reason = self.end_reason or self.peer.end_reason
            return self.end_reason
        finally:
            await self.peer.aclose(self.close_timeout)
            self._finish(self.end_reason or self.peer.end_reason or "cancelled")
            with trio.move_on_after(self.close_timeout, shield=True):
                await _call(self.on_close, self, self.end_reason)

    async def _deliver(self, channel: trio.MemoryReceiveChannel, callback: Callback) -> None:
        async for item in channel:
            await _call(callback, self, item)

    def _finish(self, reason: str) -> None:
        if not self.closed.is_set():
            self.end_reason = self.end_reason or reason
            self.closed.set()


async def answer_offer(
    offer_sdp: str,
    *,
    on_message: Callback | None = None,
    on_audio: Callback | None = None,
    on_open: Callback | None = None,
    on_close: Callback | None = None,
    nursery: trio.Nursery | None = None,
    rtc_loop: RtcLoop | None = None,
    call_id: str | None = None,
    ice_servers: Sequence[str | dict[str, Any]] = (),
    host_addresses: str | Sequence[str] | None = "auto",
    audio_chunk_ms: int = 20,
    dtx: bool = False,
    open_timeout: float = 10.0,
    close_timeout: float = 2.0,
    answer_timeout: float = 10.0,
) -> tuple[str, RtcCall]:
    """Answer a WebRTC offer; returns ``(answer_sdp, call)``.

    ``call.run()`` is started in ``nursery`` when one is given; otherwise the caller runs it.
    Raises :class:`RtcError` (the offer could not be answered; nothing is left open) or
    ``trio.TooSlowError`` after ``answer_timeout``.  ``dtx=True``: the outgoing track sends
    nothing while nothing is played (see :class:`~actors.rtc.tracks.PcmTrack`).
    """
    rtc = rtc_loop or current_rtc_loop()
    if rtc is None:
        raise RuntimeError("answer_offer needs an rtc loop: run the server inside "
                           "actors.rtc.loop.open_rtc_loop() or pass rtc_loop=")
    if not offer_sdp.lstrip().startswith("v=0"):
        raise RtcError("the request body is not an SDP offer")
    if "a=sctp-port" not in offer_sdp or "m=application" not in offer_sdp:
        raise RtcError(f"the offer has no data channel (the client must open {DATA_CHANNEL_LABEL!r})")
    if "m=audio" not in offer_sdp:
        raise RtcError("the offer has no audio media section")
    peer = RtcPeer(
        rtc,
        ice_servers=tuple(ice_servers),
        host_addresses=_auto_host_addresses(offer_sdp, host_addresses),
        audio_chunk_ms=audio_chunk_ms,
        dtx=dtx,
    )
    try:
        with trio.fail_after(answer_timeout):
            answer_sdp = await peer.answer(offer_sdp)
    except BaseException:
        await peer.aclose(close_timeout)
        raise
    call = RtcCall(
        call_id or new_call_id(), peer, on_open=on_open, on_message=on_message,
        on_audio=on_audio, on_close=on_close, open_timeout=open_timeout,
        close_timeout=close_timeout,
    )
    if nursery is not None:
        nursery.start_soon(call.run, name=f"rtc-call:{call.call_id}")
    return answer_sdp, call
