"""The WebRTC actor: one connection of a realtime session over a peer connection.

``run_webrtc(link, params, task_status=...)`` has the contract of
:func:`actors.websocket.run_websocket` and takes the same :class:`ConnectParams`
(``credential`` must be an ``ek_`` client secret; ``model`` and ``call_id`` are not used:
the model comes from the secret's session; ``max_message_size`` and ``message_queue_size``
are WebSocket settings: the data channel's limits come from SDP and ``RtcOptions``).  WebRTC-only settings are in
:class:`RtcOptions` (``functools.partial(run_webrtc, options=...)`` for a fleet).

One connection:

1. an :class:`~actors.rtc.peer.RtcPeer` makes an offer: the ``oai-events`` data channel
   and one sendrecv audio track, ICE gathered (loopback-only when the target is loopback);
2. ``POST {base}/v1/realtime/calls`` (or ``params.endpoint.calls_url()``: Azure's
   ``{endpoint}/openai/realtime/calls?api-version=…``) with the SDP (``Content-Type: application/sdp``,
   ``Authorization: Bearer ek_…``); ``201`` gives the answer and
   ``Location: /v1/realtime/calls/{call_id}`` (published as an ``info`` event).
   401/403 → ``AUTH``; 429 and 5xx → ``DROPPED``; other statuses → ``FATAL``; network
   errors → ``DROPPED``.  Details never contain the secret;
3. ICE + DTLS + SCTP: when the data channel is open the core's connection starts; when
   ``session.created`` arrives the session is *connected* and ``task_status.started()`` is
   called;
4. from there, as on WebSocket: a reader feeds every data-channel message to
   ``link.core.receive`` (``server`` / ``protocol_error`` events), a writer drains
   ``link.take_outgoing()`` into the data channel, paced with ``bufferedAmount``;
   remote audio is published as ``audio`` events (PCM16 24 kHz mono, ``audio_chunk_ms``
   chunks); connection state changes as ``info`` events;
5. a failed or closed peer connection (ICE consent lost, DTLS closed, the data channel
   closed) ends the connection with ``DROPPED``; ``error`` ``session_expired`` first makes it
   ``RECYCLE``, an auth ``error`` ``AUTH``.  ``link.stop_requested`` (the supervisor stopping
   the session) flushes what is queued and ends it ``NORMAL``; ``link.abort_requested``
   (chaos) ends it ``DROPPED``.  Closing is bounded by ``close_timeout``.

**Audio goes over the media track, not the data channel.**  Client
``input_audio_buffer.append`` events are never written to the data channel: their base64
PCM16 24 kHz mono audio is decoded and queued on the outgoing track, which plays it in real
time (Opus, 20 ms frames; silence when nothing is queued).  To keep submit order
meaningful, a control event that follows audio (``input_audio_buffer.commit``,
``response.create``, …) is written only once the track has taken all audio queued before it
(``RtcOptions.audio_barrier``); media and data still travel separately, so the server may see
a commit a few milliseconds before the last audio frame is decoded.

**The asyncio loop.**  aiortc runs on a trio-asyncio loop.  The actor uses, in order:
``RtcOptions.loop``, the loop of an enclosing ``open_rtc_loop()`` (a contextvar: a fleet
opens one loop around its nursery and every session shares it), or, failing both, a private
loop opened for this connection only (correct, but a loop and a thread pool per session).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit, urlunsplit

import attrs
import httpx
import trio

from actors.credentials import redact
from actors.events import EventKind
from actors.exits import ActorExit, ExitReason
from actors.http import new_client
from actors.inbound import InboundState, end_quiet_answers, handle_incoming
from actors.proto.errors import excerpt
from actors.rtc.ice import host_addresses_for
from actors.rtc.loop import RtcLoop, current_rtc_loop, open_rtc_loop
from actors.rtc.media import RtcError
from actors.rtc.peer import RtcPeer
from actors.proto.realtime.events import encode_client_event
from actors.endpoint import OpenAIEndpoint, realtime_calls_url
from actors.websocket import ConnectParams, live_ws_url

if TYPE_CHECKING:
    from actors.link import SessionLink

__all__ = ["RtcOptions", "ConnectParams", "run_webrtc", "realtime_calls_url"]

AUDIO_APPEND = "input_audio_buffer.append"
#: audio appends go up the media track (Realtime's, and GPT-Live's name for it)
_AUDIO_APPENDS = frozenset({AUDIO_APPEND, "session.input_audio.append"})


@attrs.frozen
class RtcOptions:
    """WebRTC-only settings of the actor (the rest is in :class:`ConnectParams`)."""

    #: the trio-asyncio loop to use (None: the enclosing ``open_rtc_loop()``, else a private one)
    loop: RtcLoop | None = None
    #: ICE servers (URLs or ``RTCIceServer`` keyword dicts); never the off-box default
    ice_servers: tuple[str | dict[str, Any], ...] = ()
    #: ICE host addresses: "auto" (127.0.0.1 only when the target host is loopback), None
    #: (aioice's interface list) or explicit addresses
    host_addresses: str | tuple[str, ...] | None = "auto"
    #: size of the published ``audio`` chunks
    audio_chunk_ms: int = 40
    #: write a control event that follows audio only after the track took that audio
    audio_barrier: bool = True
    #: data-channel pacing: pause above ``high_water`` queued bytes, resume at ``low_water``
    high_water: int = 64 * 1024
    low_water: int = 16 * 1024
    #: inbound message buffer between the loop and the reader (overflow is counted)
    message_buffer: int = 4096
    #: cap on queued outgoing audio (oldest dropped beyond it)
    max_audio_buffer_ms: int = 60_000
    #: discontinuous transmission: the microphone track sends nothing while no appended
    #: audio is queued (instead of silence, as a browser's microphone would).  Much cheaper
    #: for load runs; the server then hears exactly the appended audio, as on WebSocket
    #: (append trailing silence for the server VAD to end a turn)
    dtx: bool = False


def live_sessions_url(base: str) -> str:
    """``{base}/v1/live/sessions`` as an http(s) URL (GPT-Live's WebRTC session creation)."""
    parts = urlsplit(live_ws_url(base))
    return urlunsplit(({"ws": "http", "wss": "https"}[parts.scheme],) + tuple(parts)[1:])


async def run_webrtc(
    link: SessionLink,
    params: ConnectParams,
    *,
    options: RtcOptions | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> ActorExit:
    options = options or RtcOptions()
    rtc = options.loop or current_rtc_loop()
    if rtc is not None:
        return await _connection(link, params, options, rtc, task_status)
    async with open_rtc_loop() as own:
        return await _connection(link, params, options, own, task_status)


async def _connection(
    link: SessionLink,
    params: ConnectParams,
    options: RtcOptions,
    rtc: RtcLoop,
    task_status: trio.TaskStatus[None],
) -> ActorExit:
    live = link.core.edge is not None  # GPT-Live: POST /v1/live/sessions, JSON both ways
    try:
        url = live_sessions_url(params.url) if live else (
            params.endpoint or OpenAIEndpoint(params.url)).calls_url()
    except ValueError as exc:
        return ActorExit(ExitReason.FATAL, None, str(exc))
    peer = RtcPeer(
        rtc,
        ice_servers=options.ice_servers,
        host_addresses=host_addresses_for(urlsplit(url).hostname, options.host_addresses),
        audio_chunk_ms=options.audio_chunk_ms,
        message_buffer=options.message_buffer,
        high_water=options.high_water,
        low_water=options.low_water,
        max_play_buffer_ms=options.max_audio_buffer_ms,
        dtx=options.dtx,
    )
    state = InboundState()
    core = link.core
    started = trio.current_time()
    try:
        with trio.move_on_after(params.connect_timeout) as connecting:
            offer = await peer.create_offer()
            answer = await (_post_live_offer(url, params, offer, state, core.start_config())
                            if live else _post_offer(url, params, offer, state))
            if isinstance(answer, ActorExit):
                return answer
            await peer.accept_answer(answer)
            await peer.wait_open()
        if connecting.cancelled_caught:
            return ActorExit(ExitReason.DROPPED, None,
                             f"connect timed out after {params.connect_timeout:g}s "
                             f"(peer connection {peer.connection_state})")
        core.connection_started()
        link.emit(EventKind.INFO, {
            "event": "webrtc.connected", "call_id": state.call_id,
            "connect_ms": round((trio.current_time() - started) * 1000, 1),
        })
        return await _session(link, peer, params, options, state, task_status)
    except RtcError as exc:
        return ActorExit(ExitReason.DROPPED, None, redact(f"webrtc: {exc}", params.credential))
    finally:
        await peer.aclose(params.close_timeout)
        core.connection_lost()


async def _post(params: ConnectParams, url: str, **request: Any) -> httpx.Response:
    """POST with the fleet's kept client (``params.http``), or a client made for this request."""
    if params.http is not None:
        return await params.http.get().post(url, timeout=params.connect_timeout, **request)
    async with new_client() as client:
        return await client.post(url, timeout=params.connect_timeout, **request)


async def _post_offer(
    url: str, params: ConnectParams, offer: str, state: InboundState
) -> str | ActorExit:
    endpoint = params.endpoint or OpenAIEndpoint(params.url)
    headers = {
        **dict(endpoint.headers),
        **dict(params.extra_headers),
        **dict(endpoint.auth_headers(params.credential)),
        "Content-Type": "application/sdp",
    }
    path = urlsplit(url).path
    try:
        response = await _post(params, url, content=offer.encode(), headers=headers)
    except httpx.HTTPError as exc:
        detail = redact(f"POST {path} failed: {type(exc).__name__}: {exc}", params.credential)
        return ActorExit(ExitReason.DROPPED, None, detail)
    status = response.status_code
    if status not in (200, 201):
        reason = (ExitReason.AUTH if status in (401, 403)
                  else ExitReason.DROPPED if status >= 500 or status == 429
                  else ExitReason.FATAL)
        hint = redact(excerpt(response.content), params.credential)
        return ActorExit(reason, None, f"POST {path} rejected: HTTP {status}"
                         + (f" ({hint})" if hint.strip() else ""))
    answer = response.text
    if not answer.lstrip().startswith("v=0"):
        return ActorExit(ExitReason.FATAL, None,
                         f"POST {path}: HTTP {status} but the body is not an SDP answer "
                         f"({redact(excerpt(answer, 80), params.credential)})")
    location = response.headers.get("location", "")
    state.call_id = (location.rstrip("/").rsplit("/", 1)[-1] or None) if location else None
    return answer


async def _post_live_offer(url: str, params: ConnectParams, offer: str, state: InboundState,
                           session: dict[str, Any]) -> str | ActorExit:
    """``POST /v1/live/sessions`` with ``{"session", "transport": {"type": "webrtc", "sdp"}}``;
    the answer's SDP, or how the attempt ended."""
    headers = {**dict(params.extra_headers), "Authorization": f"Bearer {params.credential.reveal()}"}
    path = urlsplit(url).path
    body = {"session": session, "transport": {"type": "webrtc", "sdp": offer}}
    try:
        response = await _post(params, url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        return ActorExit(ExitReason.DROPPED, None,
                         redact(f"POST {path} failed: {type(exc).__name__}: {exc}", params.credential))
    status = response.status_code
    if status not in (200, 201):
        reason = (ExitReason.AUTH if status in (401, 403)
                  else ExitReason.DROPPED if status >= 500 or status == 429 else ExitReason.FATAL)
        hint = redact(excerpt(response.content), params.credential)
        return ActorExit(reason, None, f"POST {path} rejected: HTTP {status}"
                         + (f" ({hint})" if hint.strip() else ""))
    try:
        created = response.json()
        answer, state.call_id = created["transport"]["sdp"], created["session"]["id"]
    except (ValueError, KeyError, TypeError):
        return ActorExit(ExitReason.FATAL, None, f"POST {path}: HTTP {status} but no session and "
                         f"SDP answer ({redact(excerpt(response.content, 80), params.credential)})")
    return answer


async def _session(
    link: SessionLink,
    peer: RtcPeer,
    params: ConnectParams,
    options: RtcOptions,
    state: InboundState,
    task_status: trio.TaskStatus[None],
) -> ActorExit:
    messages = peer.messages.receiver
    with trio.move_on_after(params.ready_timeout) as waiting:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_when, peer.ended, nursery.cancel_scope)
            while not link.core.ready and not state.auth_error:
                handle_incoming(link, state, await messages.receive())
            nursery.cancel_scope.cancel()
    if state.auth_error:
        return ActorExit(ExitReason.AUTH, None, state.auth_error)
    if waiting.cancelled_caught:
        return ActorExit(ExitReason.DROPPED, None, "no session.created within ready_timeout")
    if not link.core.ready:
        return _ended_exit(peer, state)

    task_status.started()
    deadline = link.recycle_deadline(params.recycle_after, params.recycle_margin)
    outcome: list[ActorExit] = []
    async with trio.open_nursery() as nursery:

        def finish(exit: ActorExit) -> None:
            if not outcome:
                outcome.append(exit)
            nursery.cancel_scope.cancel()

        nursery.start_soon(_reader, link, peer, state, finish)
        nursery.start_soon(_writer, link, peer, options, finish)
        nursery.start_soon(_audio_out, link, peer)
        nursery.start_soon(_states_out, link, peer)
        nursery.start_soon(_watch_end, peer, state, finish)
        nursery.start_soon(_stop_when_asked, link)
        nursery.start_soon(_abort_when_asked, link, finish)
        if link.core.edge is not None:  # GPT-Live: an answer ends when its output goes quiet
            nursery.start_soon(end_quiet_answers, link)
        if deadline < math.inf:
            nursery.start_soon(_recycle_at, deadline, finish)
        link.wake_writer()
    return outcome[0]


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()




def _ended_exit(peer: RtcPeer, state: InboundState) -> ActorExit:
    if state.auth_error:
        return ActorExit(ExitReason.AUTH, None, state.auth_error)
    if state.expired:
        return ActorExit(ExitReason.RECYCLE, None, "session expired at the server")
    return ActorExit(ExitReason.DROPPED, None, f"webrtc: {peer.end_reason or 'ended'}")


async def _watch_end(peer: RtcPeer, state: InboundState, finish: Callable[[ActorExit], None]) -> None:
    await peer.ended.wait()
    finish(_ended_exit(peer, state))


async def _reader(link: SessionLink, peer: RtcPeer, state: InboundState,
                  finish: Callable[[ActorExit], None]) -> None:
    inbox = peer.messages
    reported = inbox.dropped
    async for message in inbox.receiver:
        handle_incoming(link, state, message)
        if inbox.dropped != reported:
            link.emit(EventKind.DROPPED, {"count": inbox.dropped - reported,
                                          "category": "inbound_events",
                                          "reason": "inbox full: the reader fell behind"})
            reported = inbox.dropped
        if state.auth_error:
            finish(ActorExit(ExitReason.AUTH, None, state.auth_error))
            return


async def _writer(link: SessionLink, peer: RtcPeer, options: RtcOptions,
                  finish: Callable[[ActorExit], None]) -> None:
    emit = link.emit
    pending: list[dict[str, Any]] = []
    audio_queued = False
    try:
        while True:
            await link.wait_outbound()
            for event in link.take_outgoing():
                if event["type"] in _AUDIO_APPENDS:
                    await _flush(peer, pending, emit)
                    _queue_audio(link, peer, event)
                    audio_queued = True
                    continue
                if audio_queued and options.audio_barrier:
                    await _flush(peer, pending, emit)
                    await peer.wait_audio_sent()
                    audio_queued = False
                pending.append(event)
            await _flush(peer, pending, emit)
            if link.stop_requested.is_set():
                finish(ActorExit(ExitReason.NORMAL, None, "closed by request"))
                return
    except RtcError as exc:
        finish(ActorExit(ExitReason.DROPPED, None, f"webrtc: {exc}"))


async def _flush(peer: RtcPeer, pending: list[dict[str, Any]],
                 emit: Callable[[EventKind, Any], Any]) -> None:
    if not pending:
        return
    batch, pending[:] = list(pending), []
    oversized = set(await peer.send_texts([encode_client_event(event) for event in batch]))
    for index, event in enumerate(batch):
        if index in oversized:
            emit(EventKind.PROTOCOL_ERROR, {
                "code": "invalid_client_event",
                "message": f"{event['type']}: larger than the peer's data-channel "
                           f"max-message-size; not sent",
                "detail": {"type": event["type"], "field": None},
            })
        else:
            emit(EventKind.SENT, event)


def _queue_audio(link: SessionLink, peer: RtcPeer, event: dict[str, Any]) -> None:
    try:
        pcm = base64.b64decode(event.get("audio") or "", validate=True)
    except (binascii.Error, ValueError):
        link.emit(EventKind.PROTOCOL_ERROR, {
            "code": "invalid_client_event",
            "message": "input_audio_buffer.append: audio is not valid base64; not sent",
            "detail": {"type": AUDIO_APPEND, "field": "audio"},
        })
        return
    track = peer.track
    before = track.dropped_bytes if track is not None else 0
    peer.feed_audio(pcm)
    if track is not None and track.dropped_bytes != before:
        link.emit(EventKind.DROPPED, {"count": track.dropped_bytes - before, "category": "audio",
                                      "reason": "outgoing audio buffer full: oldest bytes dropped"})


async def _audio_out(link: SessionLink, peer: RtcPeer) -> None:
    inbox = peer.audio_in
    reported = inbox.dropped
    async for chunk in inbox.receiver:
        link.emit(EventKind.AUDIO, chunk)
        if inbox.dropped != reported:
            link.emit(EventKind.DROPPED, {"count": inbox.dropped - reported,
                                          "category": "inbound_audio",
                                          "reason": "audio inbox full: chunks dropped"})
            reported = inbox.dropped


async def _states_out(link: SessionLink, peer: RtcPeer) -> None:
    async for connection_state in peer.states.receiver:
        link.emit(EventKind.INFO, {"event": "webrtc.connection_state", "state": connection_state})


async def _stop_when_asked(link: SessionLink) -> None:
    await link.stop_requested.wait()
    link.wake_writer()  # the writer flushes what is queued, then finishes (NORMAL)


async def _abort_when_asked(link: SessionLink, finish: Callable[[ActorExit], None]) -> None:
    """Chaos: ``link.abort_connection()`` drops the call (the peer connection is closed
    without a word, as a lost network would leave it)."""
    await link.abort_requested.wait()
    link.abort_requested = trio.Event()
    finish(ActorExit(ExitReason.DROPPED, None, "connection aborted by fault injection"))


async def _recycle_at(deadline: float, finish: Callable[[ActorExit], None]) -> None:
    await trio.sleep_until(deadline)
    finish(ActorExit(ExitReason.RECYCLE, None, "recycled before the session deadline"))
