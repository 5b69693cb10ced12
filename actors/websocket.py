"""The WebSocket actor: one connection of a realtime session.

The WebSocket itself is :mod:`actors.wsconn` (the ``websockets`` library's sans-I/O protocol
under trio; ``ConnectParams.engine="websockets"``, the default) or trio-websocket
(``engine="trio-websocket"``); the actor behaves the same over either.

``run_websocket(link, params, task_status=...)`` opens ``{url}/v1/realtime?model=…`` (or
``?call_id=…``) with ``Authorization: Bearer …`` (or what ``params.endpoint`` says: Azure's
``/openai/realtime?api-version=…&deployment=…`` with ``api-key``, :mod:`actors.endpoint`), waits for ``session.created``, calls
``task_status.started()`` (the session is *connected* only then), and from there:

* a reader turns every incoming frame into ``server`` events, or ``protocol_error`` events
  for malformed JSON, unknown types, binary or oversized frames: the connection lives on.
  With the default engine on a plain TCP socket, the reading is the process's WebSocket inbox's
  (:mod:`actors.ws_inbox`: one task serving every ready socket, each message handled from it,
  no wake-up per arrival); the reader task then only waits for the close;
* a writer drains the link's :class:`~actors.proto.client.ClientCore`: first the restore
  sequence after a reconnect, then queued client events, publishing a ``sent`` event for
  each (audio appends are counted, not echoed, to keep the hot path lean). Each wake-up is
  one write of everything queued since the last. With the default engine the link also gets
  a direct writer (:meth:`~actors.link.SessionLink.attach_writer`): the fleet's audio clock
  writes each due frame from its own task (``WsConnection.write_text``), and the writer task
  only waits when the socket is full;
* an optional recycle timer closes the connection cleanly before the server's session
  deadline (``session.expires_at``) or after ``recycle_after`` seconds.

It returns an :class:`~actors.exits.ActorExit` saying how the connection ended; whether to
come back is the supervisor's decision.  Closing is always bounded by ``close_timeout``.
"""

from __future__ import annotations

import functools
import math
import socket
import ssl
from typing import Any, Callable
from urllib.parse import urlsplit

import attrs
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)
from wsproto.events import TextMessage

from actors.credentials import Secret, redact
from actors.endpoint import Endpoint, OpenAIEndpoint, realtime_ws_url, ws_url
from actors.events import EventKind
from actors.exits import ActorExit, ExitReason, live_closed_exit
from actors.http import SharedHttpClient
from actors.inbound import InboundState, end_quiet_answers, handle_incoming
from actors.link import SessionLink
from actors.proto.realtime.events import append_json, encode_client_event
from actors.ws_inbox import ws_inbox
from actors.wsconn import WsClosed, WsConnection, WsHandshakeError, WsRejected, ws_handshake

__all__ = ["ConnectParams", "run_websocket", "realtime_ws_url", "live_ws_url"]

AUDIO_APPEND = "input_audio_buffer.append"


@attrs.frozen
class ConnectParams:
    """Where and how one connection attempt connects."""

    url: str
    credential: Secret
    model: str | None = "gpt-realtime"
    call_id: str | None = None
    #: ``"transcription"``: open a transcription session (``?intent=transcription``, no model)
    intent: str | None = None
    connect_timeout: float = 10.0
    #: how long to wait for ``session.created`` after the handshake
    ready_timeout: float = 10.0
    close_timeout: float = 2.0
    #: close cleanly and reconnect after this long (None: never); the hosted cap is 60 min
    recycle_after: float | None = 55 * 60.0
    #: recycle this long before the server's ``expires_at``
    recycle_margin: float = 60.0
    #: transport-level frame limit; larger frames are refused by the library (close 1009)
    max_message_size: int = 64 * 2**20
    message_queue_size: int = 256
    extra_headers: tuple[tuple[str, str], ...] = ()
    #: the service's paths and auth header shape (None: OpenAI's under ``url``); see
    #: :mod:`actors.endpoint` (Azure OpenAI, generic targets with headers of their own)
    endpoint: Endpoint | None = None
    #: publish a ``sent`` event for audio appends too (off: they are only counted)
    echo_audio: bool = False
    #: send a ping this often (None: never); no pong within ``ping_timeout`` means the peer
    #: is gone (a half-open TCP connection) and the connection is dropped
    ping_interval: float | None = 20.0
    ping_timeout: float = 10.0
    #: the WebSocket implementation: ``"websockets"`` (the ``websockets`` library's sans-I/O
    #: protocol under trio, :mod:`actors.wsconn`; the default, about a quarter of the CPU per
    #: message) or ``"trio-websocket"`` (wsproto). Same behaviour; see ``bench/ws_fleet.py``.
    engine: str = attrs.field(default="websockets", validator=attrs.validators.in_(("websockets", "trio-websocket")))
    #: the HTTP client for a WebRTC connection's SDP offer (a fleet's, kept for its lifetime);
    #: None: one made for the request (~50 ms of CPU each: an SSL context)
    http: SharedHttpClient | None = attrs.field(default=None, eq=False, repr=False)


def live_ws_url(base: str, attach: str | None = None) -> str:
    """``{base}/v1/live/sessions`` (GPT-Live: no query string; the model is in session.start),
    or a sideband's ``{base}/v1/live/sessions/{attach}/attach``."""
    url = ws_url(base, "live/sessions")
    return url if attach is None else f"{url}/{attach}/attach"


async def run_websocket(
    link: SessionLink,
    params: ConnectParams,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> ActorExit:
    live = link.core.edge is not None
    endpoint = params.endpoint or OpenAIEndpoint(params.url)
    url = live_ws_url(params.url, params.call_id) if live else endpoint.websocket_url(
        model=params.model, call_id=params.call_id, intent=params.intent)
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    host_header = parts.netloc
    resource = f"{parts.path}?{parts.query}" if parts.query else parts.path
    headers = [*endpoint.auth_headers(params.credential), *endpoint.headers, *params.extra_headers]
    core = link.core
    # We own the TCP stream (rather than open_websocket_url) so that it is always closed, also
    # after an abortive close, where trio-websocket 0.12 leaves it open.
    stream: trio.abc.Stream | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(params.connect_timeout):
                    stream = await _open_stream(host, port, secure)
                    ws = await _handshake(nursery, stream, host_header, resource, headers, params)
            except trio.TooSlowError:
                return ActorExit(ExitReason.DROPPED, None, "connect timed out")
            except (ConnectionRejected, WsRejected) as exc:
                status, body = (exc.status_code, exc.body) if isinstance(exc, ConnectionRejected) else (exc.status, exc.body)
                reason = ExitReason.AUTH if status in (401, 403) else (
                    ExitReason.DROPPED if status >= 500 or status == 429 else ExitReason.FATAL)
                return ActorExit(reason, None, f"handshake rejected: HTTP {status}{_body_hint(body)}")
            except (HandshakeError, WsHandshakeError) as exc:
                return ActorExit(ExitReason.DROPPED, None,
                                 redact(f"handshake failed: {type(exc).__name__}", params.credential))
            except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
                # trio wraps TLS failures (a refused certificate) in BrokenResourceError
                cause = exc.__cause__ if isinstance(exc.__cause__, ssl.SSLError) else exc
                return ActorExit(ExitReason.DROPPED, None,
                                 f"connection failed: {type(cause).__name__}: {cause}")
            core.connection_started()
            exit: ActorExit | None = None
            try:
                exit = await _session(link, ws, params, task_status)
                return exit
            finally:
                if exit is None or exit.detail not in _NO_HANDSHAKE:
                    with trio.CancelScope(shield=True):
                        with trio.move_on_after(params.close_timeout):
                            await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        if stream is not None:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
        core.connection_lost()


async def _handshake(nursery: trio.Nursery, stream: trio.abc.Stream, host_header: str, resource: str,
                     headers: list[tuple[str, str]], params: ConnectParams) -> "WsConnection | WebSocketConnection":
    if params.engine == "websockets":
        return await ws_handshake(stream, host_header, resource, headers=headers,
                                  max_message_size=params.max_message_size)
    return await wrap_client_stream(
        nursery, stream, host_header, resource,  # type: ignore[arg-type]
        extra_headers=[(k.encode(), v.encode()) for k, v in headers],
        message_queue_size=params.message_queue_size,
        max_message_size=params.max_message_size,
        receive_buffer_size=65536,
    )


#: what either engine raises once the connection is closed
_CLOSED = (ConnectionClosed, WsClosed)


async def _open_stream(host: str, port: int, secure: bool) -> trio.abc.Stream:
    tcp = await trio.open_tcp_stream(host, port)
    tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not secure:
        return tcp
    # TLS verification is always on for wss:// targets.
    tls = trio.SSLStream(tcp, ssl.create_default_context(), server_hostname=host, https_compatible=True)
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return tls


def _body_hint(body: bytes | None) -> str:
    if not body:
        return ""
    text = body[:200].decode("utf-8", "replace").strip()
    return f" ({text})" if text else ""


async def _session(
    link: SessionLink,
    ws: "WsConnection | WebSocketConnection",
    params: ConnectParams,
    task_status: trio.TaskStatus[None],
) -> ActorExit:
    state = InboundState()
    try:
        with trio.fail_after(params.ready_timeout):
            greeting = link.take_outgoing()  # Live: session.start first; Realtime: nothing
            if greeting:
                await _send_texts(ws, [encode_client_event(event) for event in greeting])
                for event in greeting:
                    link.emit(EventKind.SENT, event)
            while not link.core.ready:
                message = await ws.get_message()
                handle_incoming(link, state, message)
                if state.auth_error:
                    return ActorExit(ExitReason.AUTH, None, state.auth_error)
    except trio.TooSlowError:
        return ActorExit(ExitReason.DROPPED, None, "no session.created within ready_timeout")
    except _CLOSED as exc:
        return _closed_exit(exc, state)

    task_status.started()
    deadline = link.recycle_deadline(params.recycle_after, params.recycle_margin)
    outcome: list[ActorExit] = []
    direct = isinstance(ws, WsConnection)
    try:
        async with trio.open_nursery() as nursery:

            def finish(exit: ActorExit) -> None:
                if not outcome:
                    outcome.append(exit)
                link.attach_writer(None)
                if direct:
                    ws.stop_push()  # nothing more is handed on from the inbox
                nursery.cancel_scope.cancel()

            if direct:
                # the fleet's audio clock writes frames through this, from its own task
                link.attach_writer(functools.partial(_write_now, link, ws, state, finish, params.echo_audio),
                                   functools.partial(_write_append, link, ws, state, finish, params.echo_audio))
                nursery.start_soon(_writer, link, ws, state, finish, params.echo_audio)
            else:
                nursery.start_soon(_writer_tws, link, ws, state, finish, params.echo_audio)
            nursery.start_soon(_reader, link, ws, state, finish)
            if deadline < math.inf:
                nursery.start_soon(_recycle_at, deadline, finish)
            nursery.start_soon(_stop_when_asked, link, finish)
            if params.ping_interval is not None:
                nursery.start_soon(_heartbeat, ws, params.ping_interval, params.ping_timeout, finish)
            nursery.start_soon(_abort_when_asked, link, finish)
            if link.core.edge is not None:
                nursery.start_soon(end_quiet_answers, link)
            link.wake_writer()
    finally:
        link.attach_writer(None)
    exit = outcome[0]
    if exit.detail in _NO_HANDSHAKE:
        return exit  # no close handshake: the caller closes the TCP stream forcefully
    if not ws.closed:
        with trio.move_on_after(params.close_timeout) as scope:
            scope.shield = True
            await ws.aclose(code=1000, reason=exit.reason.value)
    return exit


async def _reader(link: SessionLink, ws: "WsConnection | WebSocketConnection", state: InboundState, finish: Callable[[ActorExit], None]) -> None:
    try:
        if isinstance(ws, WsConnection) and ws.direct:
            inbox = ws_inbox()
            if inbox is not None:  # the process's inbox reads the socket: no wake-up here per arrival
                await ws.receive_pushed(functools.partial(handle_incoming, link, state), inbox)
        while True:
            handle_incoming(link, state, await ws.get_message())
    except _CLOSED as exc:
        finish(_closed_exit(exc, state))




def _closed_exit(exc: "ConnectionClosed | WsClosed", state: InboundState) -> ActorExit:
    if isinstance(exc, WsClosed):
        code: int | None = exc.code
        detail = f"closed {exc.code} {exc.reason}".strip()
    else:
        reason = exc.reason
        code = reason.code if reason is not None else None
        detail = f"closed {code} {reason.reason or ''}".strip() if reason is not None else "closed"
    if state.auth_error:
        return ActorExit(ExitReason.AUTH, code, state.auth_error)
    if state.expired:
        return ActorExit(ExitReason.RECYCLE, code, "session expired at the server")
    if state.closed_reason is not None:
        return live_closed_exit(state.closed_reason, code)
    return ActorExit.from_close(code, detail)


def _write_queued(link: SessionLink, ws: WsConnection, echo_audio: bool) -> bool:
    """Write what the link has queued now, from the calling task, in one write (no task
    switch, no wait); True when the socket took it all, False when some is left for
    ``ws.drain()``. Raises :class:`WsClosed` if the connection is closed."""
    events = link.take_outgoing()
    if not events:
        return True
    done = ws.write_texts([encode_client_event(event) for event in events])
    emit = link.emit
    for event in events:
        if echo_audio or event["type"] != AUDIO_APPEND:
            emit(EventKind.SENT, event)
    return done


def _write_now(link: SessionLink, ws: WsConnection, state: InboundState,
               finish: Callable[[ActorExit], None], echo_audio: bool,
               event: dict[str, Any] | None) -> None:
    """The link's direct writer (:meth:`SessionLink.attach_writer`): ``event`` (taken from
    the core already; the audio clock's one append), or with None what the link has queued.
    What the socket does not take at once is left to the writer task, which waits for it
    to drain."""
    try:
        if event is None:
            done = _write_queued(link, ws, echo_audio)
        else:
            done = ws.write_text(encode_client_event(event))
            if echo_audio or event["type"] != AUDIO_APPEND:
                link.emit(EventKind.SENT, event)
        if not done:
            link.wake_writer()
    except WsClosed as exc:
        finish(_closed_exit(exc, state))


def _write_append(link: SessionLink, ws: WsConnection, state: InboundState,
                  finish: Callable[[ActorExit], None], echo_audio: bool,
                  event: dict[str, Any]) -> None:
    """The link's direct writer of one append as the core stamps it (``type``, ``audio``,
    ``event_id``): the audio clock's frame, its JSON built as bytes around the audio
    (:func:`~actors.proto.realtime.events.append_json`), framed and written at once."""
    try:
        data = append_json(event["audio"], event["event_id"])
        if data is None:  # audio that is not base64 text: the general encoder
            data = encode_client_event(event).encode()
        if not ws.write_utf8(data):
            link.wake_writer()
        if echo_audio:
            link.emit(EventKind.SENT, event)
    except WsClosed as exc:
        finish(_closed_exit(exc, state))


async def _writer(
    link: SessionLink,
    ws: WsConnection,
    state: InboundState,
    finish: Callable[[ActorExit], None],
    echo_audio: bool,
) -> None:
    """One write per wake-up: everything queued since the last one, framed together; waits
    only while the socket is full."""
    try:
        while True:
            await link.wait_outbound()
            if not _write_queued(link, ws, echo_audio):
                await ws.drain()
            if link.stop_requested.is_set():
                finish(ActorExit(ExitReason.NORMAL, 1000, "closed by request"))
                return
    except WsClosed as exc:
        finish(_closed_exit(exc, state))


async def _writer_tws(
    link: SessionLink,
    ws: WebSocketConnection,
    state: InboundState,
    finish: Callable[[ActorExit], None],
    echo_audio: bool,
) -> None:
    """The writer over trio-websocket (``engine="trio-websocket"``)."""
    emit = link.emit
    try:
        while True:
            await link.wait_outbound()
            events = link.take_outgoing()
            if len(events) == 1:
                event = events[0]
                await ws.send_message(encode_client_event(event))
                if echo_audio or event["type"] != AUDIO_APPEND:
                    emit(EventKind.SENT, event)
            elif events:
                # A backlog (restore sequence, a burst, or a writer that woke late under load):
                # all of its frames in one write, then the ``sent`` events in order.
                await _send_texts(ws, [encode_client_event(event) for event in events])
                for event in events:
                    if echo_audio or event["type"] != AUDIO_APPEND:
                        emit(EventKind.SENT, event)
            if link.stop_requested.is_set():
                finish(ActorExit(ExitReason.NORMAL, 1000, "closed by request"))
                return
    except _CLOSED as exc:
        finish(_closed_exit(exc, state))


# Writing several messages in one ``send_all`` needs trio-websocket internals (0.12: the
# wsproto connection, the stream and its lock); without them each message is sent on its own.
_BATCH_WRITES = all(
    hasattr(WebSocketConnection, name) for name in ("_send", "_abort_web_socket")
)


async def _send_texts(ws: "WsConnection | WebSocketConnection", texts: list[str]) -> None:
    """Send text messages in order, framed together and written with one ``send_all``
    (the same bytes as one ``send_message`` each, fewer syscalls and wake-ups)."""
    if isinstance(ws, WsConnection):
        await ws.send_texts(texts)
        return
    if not _BATCH_WRITES or not all(
        hasattr(ws, name) for name in ("_wsproto", "_stream", "_stream_lock", "_close_reason")
    ):
        for text in texts:
            await ws.send_message(text)
        return
    if ws._close_reason:
        raise ConnectionClosed(ws._close_reason)
    frame = ws._wsproto.send
    data = b"".join([frame(TextMessage(data=text)) for text in texts])
    async with ws._stream_lock:
        try:
            await ws._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await ws._abort_web_socket()
            assert ws._close_reason is not None
            raise ConnectionClosed(ws._close_reason) from None


_ABORTED = "connection aborted by fault injection"
_HALF_OPEN = "no pong in time: the peer is gone (half-open connection)"
#: exits after which no close handshake is attempted (the TCP stream is closed at once)
_NO_HANDSHAKE = frozenset({_ABORTED, _HALF_OPEN})


async def _heartbeat(ws: "WsConnection | WebSocketConnection", interval: float, timeout: float,
                     finish: Callable[[ActorExit], None]) -> None:
    try:
        while True:
            await trio.sleep(interval)
            with trio.move_on_after(timeout) as scope:
                await ws.ping()
            if scope.cancelled_caught:
                finish(ActorExit(ExitReason.DROPPED, None, _HALF_OPEN))
                return
    except _CLOSED:
        return  # the reader reports the close


async def _abort_when_asked(link: SessionLink, finish: Callable[[ActorExit], None]) -> None:
    await link.abort_requested.wait()
    link.abort_requested = trio.Event()
    finish(ActorExit(ExitReason.DROPPED, 1006, _ABORTED))


async def _stop_when_asked(link: SessionLink, finish: Callable[[ActorExit], None]) -> None:
    await link.stop_requested.wait()
    link.wake_writer()  # the writer flushes what is queued, then finishes


async def _recycle_at(deadline: float, finish) -> None:
    await trio.sleep_until(deadline)
    finish(ActorExit(ExitReason.RECYCLE, 1000, "recycled before the session deadline"))
