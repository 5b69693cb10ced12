"""A lean HTTP/1.1 + WebSocket front for the embedded server's ASGI app (trio).

Why not hypercorn here: a realtime load run is tens of thousands of WebSocket messages a second,
and hypercorn's path for each (wsproto's pure-Python unmasking, ASGI event dicts through its
own task and queue) took a core at about 50 streaming sessions on this machine. This front keeps
the app unchanged (the same ASGI ``scope``/``receive``/``send``) and puts two well-kept
sans-I/O libraries under it: **h11** for HTTP requests and the **websockets** library's
:class:`ServerProtocol` (C-accelerated unmasking) for WebSocket connections, with one trio
task per connection and no queue in between; the common client frame (a whole, masked text
frame) is read by ``frames.py`` without the library's per-frame generator, every other frame by
the library. ``EmbeddedServer(engine="hypercorn")`` keeps the
old path; ``bench/ws_fleet.py --server-engine`` measures both.

Per connection: HTTP/1.1 requests are served in turn (keep-alive; bodies up to ``max_body``;
the app's response goes out as it is sent); a request with ``Upgrade: websocket`` is handed,
raw bytes and all, to a ``ServerProtocol``, and the app runs it as an ASGI ``websocket`` scope.
Refusing before accept (``websocket.close`` first) answers HTTP 403, as ASGI servers do.
After the app's ``websocket.close`` the server sends its close frame, half-closes, and drains the
client's answer for at most ``close_timeout`` (closing with unread data would reset the
connection and could cost the client the close frame). The fault injector's abortive close
(``tcp_abort.py``) works the same as under hypercorn: ``scope["server"]``/``scope["client"]``
are the socket's addresses.

**Inline receiving** (ASGI extension ``rtfleet.inline_receive``, plain TCP on Linux): the app may
send ``{"type": "rtfleet.inline_receive", "handler": f}``; then, while its task waits in
``receive()`` with nothing to deliver, the connection waits in the front's read multiplexer
(``mux.py``: one task for all idle connections) instead of in a task of its own, and each whole
text message that arrives is given to ``f(text)`` right there, in the mux's task: ``True`` means
handled (nothing is delivered through ``receive()``), ``False`` means "deliver it to my task";
that message and everything after it then go through ``receive()`` as before, as do binary
messages, control frames, fragments, anything the protocol had to parse, and the end of the
stream. An exception from ``f`` is raised from the app's pending ``receive()``. A streaming
session's appends thus cost no task switch and no readiness re-arm each.

**Inline sending** (ASGI extension ``rtfleet.inline_send``, plain TCP on Linux):
``scope["extensions"]["rtfleet.inline_send"]["send_now"](texts)`` writes text messages at once
from whatever task calls it (the handler above, a timer), with no ``await``: when the connection
is open, has no extension, and no write is in progress or held, the messages go to the socket in
one write (after what the protocol queued, e.g. a pong). It returns None when it did nothing
(the app sends them the usual way), else the number of bytes the socket did not take: those are
held and go first at the next write, and the app must then send ``{"type": "rtfleet.flush"}``
(which writes what is held, waiting for the socket as ``websocket.send`` does). Once the
connection is over the messages are dropped (0), as ``websocket.send`` drops them. The
embedded server's sessions write the events an append or a deadline produced this way, so an
answer's chunk costs one task wake-up (its deadline's), not two.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections import deque
from http import HTTPStatus
from typing import Any, Awaitable, Callable

import h11
import trio
from websockets.frames import Frame, Opcode
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from actors.wsconn import QUIET_LOGGER, MessageAssembler
from standin.front.frames import FrameReader
from standin.front.mux import ReadMux, open_mux

__all__ = ["serve_front"]

_log = logging.getLogger("standin.front.lean")

App = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]

_RECEIVE = 65536
_MAX_HEAD = 64 * 1024
#: the ASGI extension of inline receiving (see :class:`_WebSocket`)
INLINE_RECEIVE = "rtfleet.inline_receive"
#: the ASGI extension of inline sending, and the message that writes what it held back
INLINE_SEND = "rtfleet.inline_send"
FLUSH = "rtfleet.flush"


async def serve_front(app: App, host: str, port: int, *, backlog: int = 4096,
                      max_message_size: int = 16 * 2**20, max_body: int = 16 * 2**20,
                      close_timeout: float = 1.0, ssl_context: ssl.SSLContext | None = None,
                      task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on ``host:port`` until cancelled; ``started("http://host:port")``
    (``https://`` with an ``ssl_context``: TLS, for wss:// clients)."""
    tcp = await trio.open_tcp_listeners(port, host=host, backlog=backlog)
    sockname = tcp[0].socket.getsockname()
    shown = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
    listeners: list[trio.abc.Listener[Any]] = list(tcp)
    if ssl_context is not None:
        listeners = [trio.SSLListener(t, ssl_context, https_compatible=True) for t in tcp]

    mux = open_mux() if ssl_context is None else None  # TLS is read through its stream

    async def handle(stream: trio.abc.Stream) -> None:
        _socket_stream(stream).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await _Connection(app, stream, max_message_size, max_body, close_timeout, mux).run()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:  # one connection's failure never stops the server
            _log.exception("connection handler failed")
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        if mux is not None:
            nursery.start_soon(mux.run)
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(f"{'https' if ssl_context else 'http'}://{shown}:{sockname[1]}")


def _socket_stream(stream: trio.abc.Stream) -> trio.SocketStream:
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    assert isinstance(stream, trio.SocketStream)
    return stream


class _Connection:
    def __init__(self, app: App, stream: trio.abc.Stream, max_message_size: int, max_body: int,
                 close_timeout: float, mux: ReadMux | None = None) -> None:
        self.app = app
        self.mux = mux
        self.stream = stream
        self.max_message_size = max_message_size
        self.max_body = max_body
        self.close_timeout = close_timeout
        sock = _socket_stream(stream).socket
        self.server = tuple(sock.getsockname()[:2])
        self.client = tuple(sock.getpeername()[:2])

    async def run(self) -> None:
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        try:
            await self._serve(http)
        except h11.RemoteProtocolError as exc:
            if http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = exc.error_status_hint
                text = f"bad request: {exc}".encode()
                await self.stream.send_all(
                    f"HTTP/1.1 {status} Bad Request\r\ncontent-type: text/plain\r\n"
                    f"content-length: {len(text)}\r\nconnection: close\r\n\r\n".encode() + text)

    async def _serve(self, http: h11.Connection) -> None:
        raw = bytearray()  # the bytes of the current request head (a WebSocket upgrade needs them)
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(_RECEIVE)
                if http.their_state is h11.IDLE:
                    raw += data
                http.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                if _is_upgrade(event):
                    await _WebSocket(self, bytes(raw)).run()
                    return
                await self._http(http, event)
                if http.our_state is h11.MUST_CLOSE or http.their_state is h11.MUST_CLOSE:
                    return
                if http.our_state is h11.DONE and http.their_state is h11.DONE:
                    http.start_next_cycle()
                    raw = bytearray(http.trailing_data[0])
                    continue
                return

    def _scope(self, kind: str, target: bytes, headers: list[tuple[bytes, bytes]],
               **extra: Any) -> dict[str, Any]:
        path, _, query = target.partition(b"?")
        return {"type": kind, "asgi": {"version": "3.0"}, "http_version": "1.1",
                "scheme": "ws" if kind == "websocket" else "http",
                "path": path.decode("latin-1"), "raw_path": path, "query_string": query,
                "root_path": "", "headers": headers, "server": self.server, "client": self.client,
                **extra}

    async def _http(self, http: h11.Connection, request: h11.Request) -> None:
        body = bytearray()
        too_large = False
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await self.stream.receive_some(_RECEIVE))
            elif isinstance(event, h11.Data):
                body += event.data
                too_large = too_large or len(body) > self.max_body
                if too_large:
                    body.clear()
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                break  # PAUSED: an Upgrade other than websocket, declined by answering normally
            else:
                return
        if too_large:
            await self._plain(http, 413, b"request body too large")
            return
        headers = [(k.lower(), v) for k, v in request.headers]
        scope = self._scope("http", request.target, headers, method=request.method.decode())
        delivered = False
        started = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                await self._write(http, h11.Response(status_code=message["status"],
                                                     headers=list(message.get("headers") or [])))
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await self._write(http, h11.Data(data=message["body"]))
                if not message.get("more_body", False):
                    await self._write(http, h11.EndOfMessage())

        await self.app(scope, receive, send)
        if not started:
            await self._plain(http, 500, b"no response")
        elif http.our_state is h11.SEND_BODY:
            await self._write(http, h11.EndOfMessage())

    async def _plain(self, http: h11.Connection, status: int, text: bytes) -> None:
        await self._write(http, h11.Response(status_code=status, headers=[
            (b"content-type", b"text/plain"), (b"content-length", str(len(text)).encode()),
            (b"connection", b"close")]))
        await self._write(http, h11.Data(data=text))
        await self._write(http, h11.EndOfMessage())

    async def _write(self, http: h11.Connection, event: Any) -> None:
        data = http.send(event)
        if data:
            await self.stream.send_all(data)


def _text_frame(payload: bytes) -> bytes:
    """A server's text frame (FIN, unmasked, no extension), as ``Protocol.send_text`` writes it
    when the connection is open and has no extension, without its frame object and generator."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload


def _is_upgrade(request: h11.Request) -> bool:
    for name, value in request.headers:
        if name == b"upgrade" and value.lower() == b"websocket":
            return True
    return False


class _WebSocket:
    """One WebSocket connection driven by the app through ASGI ``receive``/``send``."""

    def __init__(self, conn: _Connection, head: bytes) -> None:
        self.conn = conn
        self.stream = conn.stream
        self.protocol = ServerProtocol(max_size=conn.max_message_size, logger=QUIET_LOGGER)
        self.head = head
        self.request: Request | None = None
        self.frames: deque[Frame] = deque()
        self.assembler = MessageAssembler()
        self.reader: FrameReader | None = None  # once the handshake is read
        self.connect_delivered = False
        self.accepted = False
        self.close_code: int | None = None  # set once the connection is over
        self.lock = trio.StrictFIFOLock()
        #: a denial response the app is sending (``websocket.http.response`` extension)
        self.denial: tuple[int, list[tuple[bytes, bytes]], bytearray] | None = None
        #: the app's inline handler of text messages (``rtfleet.inline_receive``), and what
        #: the mux read for the app's task: (frames, end of stream) or the handler's exception
        self.inline: Callable[[str], bool] | None = None
        self.mux = conn.mux if isinstance(self.stream, trio.SocketStream) else None
        self._fd = self.stream.socket.fileno() if self.mux is not None else -1
        self._handoff: tuple[list[Frame], bool] | None = None
        #: bytes to send before the protocol's (text frames made here, in the order sent)
        self._pending: list[bytes] = []
        self._failure: BaseException | None = None
        self._wake = trio.Event()

    async def run(self) -> None:
        protocol = self.protocol
        protocol.receive_data(self.head)
        for event in protocol.events_received():
            if isinstance(event, Request):
                self.request = event
        head_end = self.head.find(b"\r\n\r\n")
        self.reader = FrameReader(protocol, at_boundary=0 <= head_end == len(self.head) - 4)
        if self.request is None:  # h11 accepted the head, websockets did not
            await self.stream.send_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"
                                       b"connection: close\r\n\r\n")
            return
        request = self.request
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.raw_items()]
        offered = [p.strip() for v in request.headers.get_all("Sec-WebSocket-Protocol")
                   for p in v.split(",") if p.strip()]
        extensions: dict[str, Any] = {"websocket.http.response": {}}
        if self.mux is not None:
            extensions[INLINE_RECEIVE] = {}
            extensions[INLINE_SEND] = {"send_now": self.send_now}
        scope = self.conn._scope("websocket", request.path.encode("latin-1"), headers,
                                 subprotocols=offered, extensions=extensions)
        try:
            await self.conn.app(scope, self.receive, self.send)
        finally:
            if self.accepted and self.close_code is None:
                await self.send({"type": "websocket.close", "code": 1000})
            elif not self.accepted:
                await self._reject()
            if self.accepted:
                await self._drain()

    async def receive(self) -> dict[str, Any]:
        if not self.connect_delivered:
            self.connect_delivered = True
            return {"type": "websocket.connect"}
        while True:
            while self.frames:
                message = self.assembler.take(self.frames.popleft())
                if message is not None:
                    if isinstance(message, str):
                        return {"type": "websocket.receive", "text": message}
                    return {"type": "websocket.receive", "bytes": message}
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            if self._handoff is not None:
                frames, eof = self._handoff
                self._handoff = None
                await self._absorb(frames, eof)
                continue
            if self.close_code is not None:
                return {"type": "websocket.disconnect", "code": self.close_code}
            if self._inline_ready():
                await self._wait_inline()
            else:
                await self._read()

    async def _read(self) -> None:
        try:
            data = await self.stream.receive_some(_RECEIVE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        assert self.reader is not None
        await self._absorb(self.reader.feed(data) if data else self.reader.feed_eof(), not data)

    def _inline_ready(self) -> bool:
        """Wait in the mux (the app's handler takes text messages as they come) rather than
        read here: the app gave a handler, the connection is open and its reader in step."""
        return (self.inline is not None and self.mux is not None and not self.mux.closed
                and self.reader is not None and not self.reader.passthrough
                and self.protocol.state is State.OPEN)

    async def _wait_inline(self) -> None:
        self._wake = trio.Event()
        assert self.mux is not None
        self.mux.add(self._fd, self._readable)
        try:
            await self._wake.wait()
        finally:
            self.mux.discard(self._fd)

    def _readable(self) -> None:
        """The mux found data (called in its task): whole text messages go to the app's inline
        handler while it takes them; anything else, and all after it, wakes the app's task
        (``_handoff``), as does the end of the stream or the handler's exception."""
        reader = self.reader
        assert reader is not None
        try:
            data = os.read(self._fd, _RECEIVE)
        except BlockingIOError:
            return
        except OSError:  # reset: the end, as a stream read reports it
            data = b""
        payloads = reader.texts(data)
        if payloads is not None:  # the commonest read (appends): no frame objects
            for n, payload in enumerate(payloads):
                if not self._take_inline(payload):
                    frames = [] if self._failure is not None else [
                        Frame(Opcode.TEXT, p) for p in payloads[n:]]
                    break
            else:
                return  # all taken: stay in the mux
        else:
            given = reader.protocol_feeds
            frames = reader.feed(data) if data else reader.feed_eof()
            if data and reader.protocol_feeds == given:  # only whole data frames, read here
                for n, frame in enumerate(frames):
                    if frame.opcode is not Opcode.TEXT or not self._take_inline(frame.data):
                        frames = [] if self._failure is not None else frames[n:]
                        break
                else:
                    return  # all taken: stay in the mux
        self._handoff = (frames, not data)
        self.mux.discard(self._fd)  # type: ignore[union-attr]
        self._wake.set()

    def _take_inline(self, payload: bytes) -> bool:
        """The app's inline handler took this text message; False: no handler, not UTF-8, or
        the handler refused it or raised (then kept in ``_failure``, as if it had been raised in
        the app's task)."""
        handler = self.inline
        if handler is None:
            return False
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            return False
        try:
            return bool(handler(text))
        except Exception as exc:
            self._failure = exc
            return False

    async def _absorb(self, frames: list[Frame], eof: bool) -> None:
        """What a read gave: frames to deliver, the protocol's answers to send, the end."""
        protocol = self.protocol
        self.frames.extend(frames)
        await self._flush()
        if eof or protocol.close_rcvd is not None or protocol.state is State.CLOSED:
            received = protocol.close_rcvd
            self.close_code = int(received.code) if received is not None else 1006

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        protocol = self.protocol
        if kind == "websocket.accept":
            assert self.request is not None
            response = protocol.accept(self.request)
            if message.get("subprotocol"):
                response.headers["Sec-WebSocket-Protocol"] = message["subprotocol"]
            protocol.send_response(response)
            self.accepted = True
            if protocol.handshake_exc is not None:  # a bad upgrade: answered 400 by the library
                self.close_code = 1002
            await self._flush()
        elif kind == "websocket.send":
            if self.close_code is not None or protocol.state is not State.OPEN:
                return  # the peer is gone; the app learns it from receive()
            text = message.get("text")
            if text is not None and not protocol.extensions:  # the frame made here (see _text_frame)
                self._pending += protocol.data_to_send()  # what the protocol queued goes first
                self._pending.append(_text_frame(text.encode()))
            elif text is not None:
                protocol.send_text(text.encode())
            else:
                protocol.send_binary(message.get("bytes") or b"")
            if not message.get("more"):  # more: the app sends again at once (one write for all)
                await self._flush()
        elif kind == FLUSH:
            await self._flush()
        elif kind == INLINE_RECEIVE:
            self.inline = message.get("handler")
        elif kind == "websocket.http.response.start" and not self.accepted:
            self.denial = (int(message["status"]), list(message.get("headers") or []), bytearray())
        elif kind == "websocket.http.response.body" and self.denial is not None:
            status, header_list, body = self.denial
            body += message.get("body") or b""
            if not message.get("more_body"):
                await self._deny(status, header_list, bytes(body))
        elif kind == "websocket.close":
            if not self.accepted:
                await self._reject()
                self.accepted = True  # nothing more to send
                self.close_code = 1000
                return
            if protocol.state is State.OPEN:
                protocol.send_close(message.get("code") or 1000, message.get("reason") or "")
                await self._flush()
            if self.close_code is None:
                self.close_code = message.get("code") or 1000
            # The drain happens once the app has returned: one of its tasks may be reading.

    def send_now(self, texts: list[str]) -> int | None:
        """Text messages written at once (``rtfleet.inline_send``, see the module's docstring):
        None when nothing was done, else the bytes held back for the next write (0: all
        written, or dropped as the connection is over)."""
        protocol = self.protocol
        if self.close_code is not None or protocol.state is not State.OPEN:
            return 0  # the peer is gone; the app learns it from receive()
        lock = self.lock
        if self._pending or lock.locked() or protocol.extensions or self.mux is None:
            return None
        chunks = protocol.data_to_send()  # what the protocol queued goes first
        chunks += [_text_frame(text.encode()) for text in texts]
        data = b"".join(chunks)
        sent = self._write_some(data)
        if sent < 0:
            return 0
        if sent < len(data):
            self._pending.append(data[sent:])
            return len(data) - sent
        return 0

    def _write_some(self, data: bytes) -> int:
        """One non-blocking write of ``data`` to the socket: the bytes it took (0: none now),
        or -1 when the connection is gone (``close_code`` then says 1006)."""
        fd = self.stream.socket.fileno()  # -1 once closed: never a reused descriptor
        try:
            sent = os.write(fd, data) if fd >= 0 else -1
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = -1
        if sent < 0:
            self.close_code = self.close_code or 1006
        return sent

    async def _deny(self, status: int, header_list: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The app's own HTTP answer instead of the upgrade (ASGI ``websocket.http.response``)."""
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in header_list])
        headers["Content-Length"] = str(len(body))
        headers["Connection"] = "close"
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        self.protocol.send_response(Response(status, reason, headers, body))
        self.accepted = True  # nothing more to send
        self.close_code = 1000
        self.denial = None
        await self._flush()

    async def _reject(self) -> None:
        if self.request is None or self.accepted:
            return
        self.accepted = True
        self.protocol.send_response(self.protocol.reject(403, "Forbidden\n"))
        await self._flush()

    async def _flush(self) -> None:
        chunks = self.protocol.data_to_send()
        if self._pending:
            chunks, self._pending = self._pending + chunks, []
        if not chunks:
            return
        data = b"".join(chunks)
        lock = self.lock
        if self.mux is not None and data and chunks[-1] != b"" and not lock.locked():
            # plain TCP and no write in progress: one non-blocking write, and the stream's
            # send_all only for what the socket did not take (no lock wait, no scheduling
            # round per write: a streaming session's every answer event comes here)
            lock.acquire_nowait()
            try:
                sent = self._write_some(data)
                if 0 <= sent < len(data):
                    await self.stream.send_all(data[sent:])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.close_code = self.close_code or 1006
            finally:
                lock.release()
            return
        async with lock:
            try:
                if data:
                    await self.stream.send_all(data)
                if chunks[-1] == b"" and isinstance(self.stream, trio.SocketStream):
                    await self.stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.close_code = self.close_code or 1006

    async def _drain(self) -> None:
        """Half-close and read what the client still sends (its close frame) until it is done."""
        with trio.move_on_after(self.conn.close_timeout):
            try:
                if isinstance(self.stream, trio.SocketStream):  # TLS has no half-close
                    await self.stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            while True:
                try:
                    if not await self.stream.receive_some(_RECEIVE):
                        return
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
