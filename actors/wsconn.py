"""A lean WebSocket client connection: trio I/O around the ``websockets`` sans-I/O protocol.

The protocol work (handshake, framing, masking with its C speed-up, control frames, the close
handshake, the message size limit) is the ``websockets`` library's :class:`ClientProtocol`; this
module only moves bytes between it and a trio stream. Measured per 1.3 KB append message with
``python bench/ws_codec.py``: framing costs about 0.26x what wsproto (trio-websocket's engine)
costs, parsing about 0.33x.

Differences from trio-websocket that matter to the actor:

* no background task: whoever calls :meth:`WsConnection.get_message` reads the socket (the
  actor has exactly one reader); pings are answered and pongs matched on that path;
* :meth:`WsConnection.write_texts` frames a batch of messages and writes them to the socket
  at once from the calling task, without a scheduling point: a writer (or the fleet's audio
  clock, :mod:`actors.pacer`) that wakes once writes once, and nothing waits unless the
  socket is full. What the socket does not take stays buffered, in order, for
  :meth:`WsConnection.drain` (the only place that waits for the socket); over TLS every write
  goes through ``drain``;
* the frames themselves (text frames built here, the server's bytes cut at frame boundaries)
  are :mod:`actors.wsframes`, sans-I/O;
* the reader waits for the socket to be readable and then reads once (``os.read`` on the
  socket's descriptor; trio's ``receive_some`` tries a read first and adds a scheduling point
  after it): one wake-up per arrival, and every message of that read parsed and handed on
  without another;
* or, with :meth:`WsConnection.receive_pushed`, no reader wakes at all: the socket joins the
  process's WebSocket inbox (:mod:`actors.ws_inbox`, one task serving every ready socket), which
  reads it and hands every whole message to a callback from its own task; the connection's
  task then only waits, to write what the socket did not take at once (a pong, the echo of a
  close) and to raise the close;
* handshake failures raise :class:`WsRejected` (an HTTP status other than 101, with the start
  of the body) or :class:`WsHandshakeError`; a closed connection raises :class:`WsClosed` with
  the close code (1006 when the TCP connection ended without a close frame);
* the library is given a logger that never logs at debug level, so the ``Authorization``
  header is never written to a log even when the application logs everything at DEBUG.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import trio
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from actors.wsframes import FrameSplitter, MessageAssembler, frame_limit, text_frame

if TYPE_CHECKING:
    from actors.ws_inbox import WsInbox

__all__ = ["QUIET_LOGGER", "MessageAssembler", "WsClosed", "WsConnection", "WsHandshakeError", "WsRejected",
           "ws_handshake"]

#: A logger outside the logging hierarchy, at WARNING: ``websockets`` logs request headers
#: (with the bearer key) at DEBUG when its logger allows it, so it must never allow it.
QUIET_LOGGER = logging.Logger("rtfleet.websocket.wire", level=logging.WARNING)
_RECEIVE_SIZE = 65536
#: the longest response head awaited before the protocol is left to judge it
_MAX_HEAD = 65536


class WsClosed(Exception):
    """The connection is closed: ``code`` (1006: no close frame) and ``reason``."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed {code} {reason}".strip())
        self.code = code
        self.reason = reason


class WsRejected(Exception):
    """The server answered the upgrade with HTTP ``status`` (not 101)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"handshake rejected: HTTP {status}")
        self.status = status
        self.body = body


class WsHandshakeError(Exception):
    """The upgrade failed for a reason other than an HTTP status (bad headers, EOF...)."""


async def ws_handshake(
    stream: trio.abc.Stream,
    host_header: str,
    resource: str,
    *,
    headers: list[tuple[str, str]],
    max_message_size: int,
) -> WsConnection:
    """Upgrade ``stream`` to a WebSocket connection for ``resource`` (path and query)."""
    protocol = ClientProtocol(parse_uri(f"ws://{host_header}{resource}"),
                              max_size=max_message_size, logger=QUIET_LOGGER)
    request = protocol.connect()
    for name, value in headers:
        request.headers[name] = value
    protocol.send_request(request)
    await stream.send_all(b"".join(protocol.data_to_send()))
    # The response head goes to the protocol; what follows it (frames in the same read) goes
    # to the connection's frame splitter, so that the protocol's buffer is empty at the start.
    received = b""
    eof = False
    while not eof:
        data = await stream.receive_some(_RECEIVE_SIZE)
        eof = not data
        received += data
        end = received.find(b"\r\n\r\n")
        if end >= 0 or len(received) > _MAX_HEAD:
            break
    head, rest = (received[: end + 4], received[end + 4:]) if end >= 0 else (received, b"")
    protocol.receive_data(head)
    response = _response(protocol.events_received(), protocol)
    if response:
        connection = WsConnection(stream, protocol)
        connection._split(rest)
        await connection._absorb(eof=False)
        return connection
    # not a 101 (a refusal's body follows its head) or not HTTP: the protocol reads on
    while True:
        if rest:
            protocol.receive_data(rest)
        if eof:
            protocol.receive_eof()
        _response(protocol.events_received(), protocol)
        if eof:
            raise WsHandshakeError("connection closed during the handshake")
        rest = await stream.receive_some(_RECEIVE_SIZE)
        eof = not rest


def _response(events: list, protocol: ClientProtocol) -> bool:
    """True if ``events`` hold the server's 101; raises for a refusal or a bad response."""
    for event in events:
        if isinstance(event, Response):
            exc = protocol.handshake_exc
            if isinstance(exc, InvalidStatus):
                raise WsRejected(exc.response.status_code, exc.response.body or b"")
            if exc is not None:
                raise WsHandshakeError(type(exc).__name__)
            return True
    return False


class WsConnection:
    """One open client connection; see the module docstring for its contract."""

    def __init__(self, stream: trio.abc.Stream, protocol: ClientProtocol) -> None:
        self._stream = stream
        self._protocol = protocol
        #: the socket written and read directly (a plain TCP stream); None: through the stream
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        #: bytes framed and not yet written, oldest first (every write goes through it)
        self._out = bytearray()
        #: an EOF (half close) is owed after ``_out``
        self._eof_due = False
        #: held by the one task that waits for the socket to take more (``drain``)
        self._drain_lock = trio.StrictFIFOLock()
        #: a drain holds the lock (a flag: the writes' check, cheaper than ``locked()``)
        self._draining = False
        #: received, in order: whole text messages cut by the splitter (``str``, or ``bytes`` if
        #: not UTF-8) and frames the protocol parsed (control frames, fragments, binary)
        self._frames: deque[Frame | str | bytes] = deque()
        self._splitter = FrameSplitter(frame_limit(protocol))
        self._assembler = MessageAssembler()
        self._pongs: dict[bytes, trio.Event] = {}
        self._closed: WsClosed | None = None
        #: open, no extension, nothing the protocol owes first: a frame may go straight out
        #: (recomputed after every exchange with the protocol: see _buffer_output)
        self._plain = False
        self._note_plain()
        #: push mode (:meth:`receive_pushed`): where messages go, the inbox and descriptor the
        #: socket is served under, the waiting task's wake-up and what ended the push
        self._on_message: Callable[[str | bytes], None] | None = None
        self._pushed: tuple[WsInbox, int] | None = None
        self._wake: trio.Event | None = None
        self._push_error: BaseException | None = None

    @property
    def closed(self) -> WsClosed | None:
        """Why the connection closed, or None while it is open."""
        return self._closed

    @property
    def direct(self) -> bool:
        """Writes go to the socket from the calling task (``write_texts``); False over TLS,
        where only :meth:`drain` writes."""
        return self._socket is not None

    # -- receiving ----------------------------------------------------------------------------

    async def get_message(self) -> str | bytes:
        """The next complete message (text as ``str``); raises :class:`WsClosed` at the end."""
        if self._pushed is not None:
            raise RuntimeError("get_message() while the inbox reads this connection")
        while True:
            frames = self._frames
            while frames:
                item = frames.popleft()
                if type(item) is str or type(item) is bytes:
                    return item
                message = self._take(item)  # type: ignore[arg-type]
                if message is not None:
                    return message
            if self._closed is not None:
                raise self._closed
            await self._receive()

    def _take(self, frame: Frame) -> str | bytes | None:
        if frame.opcode is Opcode.PONG:
            waiter = self._pongs.pop(bytes(frame.data), None)
            if waiter is not None:
                waiter.set()
            return None
        return self._assembler.take(frame)

    async def receive_pushed(self, on_message: Callable[[str | bytes], None], inbox: WsInbox) -> NoReturn:
        """Hand every message to ``on_message`` as it arrives until the connection closes, then
        raise :class:`WsClosed` (or what ``on_message`` raised). Messages read already go first,
        from the calling task; the rest from ``inbox``'s task (:mod:`actors.ws_inbox`: no task
        switch per arrival), in order, as :meth:`get_message` would return them. The calling
        task only waits: it drains what the inbox's reads left for the socket (a pong, a close's
        echo) and raises the end. Cancel it (or :meth:`stop_push`) to stop: the socket leaves the
        inbox. Needs a plain TCP socket (:attr:`direct`)."""
        sock = self._socket
        if sock is None:
            raise RuntimeError("receive_pushed() needs a plain TCP socket (not TLS)")
        self._on_message = on_message
        self._wake = trio.Event()
        self._push_error = None
        try:
            self._deliver()
            fd = sock.fileno()
            if self._closed is None and fd >= 0:
                inbox.add(fd, self._on_readable, self._push_failed)
                self._pushed = (inbox, fd)
            elif self._closed is None:  # the stream was closed under us
                self._protocol.receive_eof()
                self._set_closed()
            while True:
                if self._push_error is not None:
                    raise self._push_error
                if self._out or self._eof_due:
                    await self.drain()
                if self._closed is not None:
                    raise self._closed
                await self._wake.wait()
                self._wake = trio.Event()
        finally:
            self.stop_push()
            self._on_message = None

    def stop_push(self) -> None:
        """Take the socket out of the inbox (nothing more is handed on); idempotent."""
        pushed = self._pushed
        if pushed is not None:
            self._pushed = None
            pushed[0].remove(pushed[1])

    def _on_readable(self) -> None:
        """The inbox's call when the socket is readable: one read, its frames cut, every whole
        message handed on. Raises what the handler or a write raises (the inbox hands it to
        :meth:`_push_failed`)."""
        fd = self._socket.fileno()  # type: ignore[union-attr]
        data = b""
        if fd >= 0:
            try:
                data = os.read(fd, _RECEIVE_SIZE)
            except BlockingIOError:
                return
            except OSError:  # reset by the peer: the end of the connection, as EOF is
                data = b""
        if not data:
            self._splitter.end(self._protocol)
            self._absorb_now(eof=True)
        elif self._splitter.feed(data, self._protocol, self._frames):
            self._absorb_now(eof=False)
        # else: whole text frames only, cut by the splitter: the protocol has nothing new
        self._deliver()
        if self._closed is not None:
            self.stop_push()
            self._wake.set()  # type: ignore[union-attr]
        elif self._out or self._eof_due:
            self._wake.set()  # type: ignore[union-attr]

    def _push_failed(self, exc: BaseException) -> None:
        self._pushed = None  # the inbox removed the socket
        self._push_error = exc
        if self._wake is not None:
            self._wake.set()

    def _deliver(self) -> None:
        """Every whole message received so far to ``_on_message``, in order."""
        frames, on_message = self._frames, self._on_message
        assert on_message is not None
        while frames:
            item = frames.popleft()
            if type(item) is str or type(item) is bytes:
                on_message(item)
            else:
                message = self._take(item)  # type: ignore[arg-type]
                if message is not None:
                    on_message(message)

    async def _receive(self) -> None:
        sock = self._socket
        if sock is None:
            try:
                data = await self._stream.receive_some(_RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
        else:
            data = await _read_socket(sock)
        if data:
            self._split(data)
        else:
            self._splitter.end(self._protocol)
        self._absorb_now(eof=not data)
        if self._out or self._eof_due:
            await self.drain()  # a pong, the echo of a close frame, a close after an error

    def _split(self, data: bytes) -> None:
        self._splitter.feed(data, self._protocol, self._frames)

    async def _absorb(self, eof: bool) -> None:
        """Take what the protocol parsed, send what it owes, and note whether it is over."""
        self._absorb_now(eof)
        await self.drain()

    def _absorb_now(self, eof: bool) -> None:
        protocol = self._protocol
        self._frames.extend(protocol.events_received())
        self._buffer_output()
        if self._out and self._socket is not None:
            self._write_buffered()
        if eof or protocol.state is State.CLOSED or protocol.close_rcvd is not None or (
            protocol.state is State.CLOSING and protocol.parser_exc is not None
        ):
            self._set_closed()

    def _note_plain(self) -> None:
        protocol = self._protocol
        self._plain = (self._closed is None and protocol.state is State.OPEN and not protocol.writes
                       and not protocol.extensions)

    def _set_closed(self) -> None:
        self._plain = False
        if self._closed is None:
            protocol = self._protocol
            received = protocol.close_rcvd
            if received is not None:
                self._closed = WsClosed(int(received.code), received.reason)
            elif protocol.close_sent is not None and protocol.parser_exc is not None:
                self._closed = WsClosed(int(protocol.close_sent.code), protocol.close_sent.reason)
            else:
                self._closed = WsClosed(1006, "")
            for waiter in self._pongs.values():
                waiter.set()

    # -- sending ------------------------------------------------------------------------------

    def write_texts(self, texts: "list[str] | tuple[str, ...]") -> bool:
        """Frame every text message and write them now, in order, from the calling task (no
        task switch, no wait): True when the socket took everything, False when bytes are
        left for :meth:`drain` (the socket is full, a drain is under way, or TLS).

        Raises :class:`WsClosed` if the connection is closed or closing."""
        if self._closed is not None:
            raise self._closed
        protocol = self._protocol
        if protocol.state is not State.OPEN:
            raise WsClosed(1006, "closing")
        if protocol.writes:  # what the protocol owes first (a pong), then these, in order
            self._buffer_output()
        if protocol.extensions:  # pragma: no cover - none is ever offered
            for text in texts:
                protocol.send_text(text.encode())
            self._buffer_output()
            data = b""
        elif len(texts) == 1:
            data = text_frame(texts[0].encode())
        else:
            data = b"".join([text_frame(text.encode()) for text in texts])
        return self._write(data)

    def write_text(self, text: str) -> bool:
        """:meth:`write_texts` of one message."""
        return self.write_utf8(text.encode())

    def write_utf8(self, data: bytes) -> bool:
        """:meth:`write_texts` of one message given as its UTF-8 bytes (valid UTF-8: the
        caller's word), framed as they are: the audio clock's path."""
        sock = self._socket
        if not self._plain or self._out or sock is None or self._draining:
            protocol = self._protocol
            if self._closed is not None or protocol.state is not State.OPEN or protocol.writes or protocol.extensions:
                return self.write_texts((data.decode(),))
            return self._write(text_frame(data))
        # _write and _os_write in one: nothing waiting, the frame goes straight to the socket
        frame = text_frame(data)
        fd = sock.fileno()  # -1 once the stream is closed: never write to a reused descriptor
        if fd < 0:
            self._fail_closed()
        try:
            written = os.write(fd, frame)
        except BlockingIOError:
            written = 0
        except OSError:
            self._fail_closed()
        if written < len(frame):
            self._out += memoryview(frame)[written:]
            return False
        return True

    def _write(self, data: bytes) -> bool:
        """Write framed ``data`` after what is buffered, now, as far as the socket takes it."""
        sock = self._socket
        if self._out or sock is None or self._draining:
            self._out += data
            return sock is not None and self._write_buffered()
        # the common case: nothing waiting, the frames go straight to the socket
        written = self._os_write(sock, data)
        if written < len(data):
            self._out += memoryview(data)[written:]
            return False
        return True

    async def send_message(self, text: str) -> None:
        await self.send_texts((text,))

    async def send_texts(self, texts: "list[str] | tuple[str, ...]") -> None:
        """Frame every text message and write them (one write when the socket takes them)."""
        if not self.write_texts(texts):
            await self.drain()

    async def ping(self) -> None:
        """Send a ping and wait for its pong (raises :class:`WsClosed` if the connection ends)."""
        if self._closed is not None:
            raise self._closed
        payload = os.urandom(4)
        waiter = self._pongs[payload] = trio.Event()
        self._protocol.send_ping(payload)
        self._buffer_output()
        await self.drain()
        await waiter.wait()
        if self._closed is not None:
            raise self._closed

    def _buffer_output(self) -> None:
        """Move what the protocol owes the peer into ``_out`` (an EOF is noted, not written)."""
        chunks = self._protocol.data_to_send()
        if chunks:
            if chunks[-1] == b"":
                self._eof_due = True
            self._out += b"".join(chunks)
        self._note_plain()

    def _write_buffered(self) -> bool:
        """Write ``_out`` to the socket as far as it takes it, without waiting; True when all
        is written. Not while a drain waits (it owns the rest) or before an EOF is due."""
        out = self._out
        if not out:
            return not self._eof_due
        if self._draining:
            return False
        sock = self._socket
        assert sock is not None
        written = self._os_write(sock, out)
        if written == len(out):
            out.clear()
            return not self._eof_due
        del out[:written]
        return False

    def _os_write(self, sock: Any, data: bytes | bytearray | memoryview) -> int:
        """One non-blocking write of ``data``: the bytes the socket took (0 when full); a
        closed or failed socket closes the connection (raises its :class:`WsClosed`)."""
        fd = sock.fileno()  # -1 once the stream is closed: never write to a reused descriptor
        if fd < 0:
            self._fail_closed()
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            self._fail_closed()

    def _fail_closed(self) -> NoReturn:
        self._out.clear()
        self._eof_due = False
        self._protocol.receive_eof()
        self._set_closed()
        raise self._closed  # type: ignore[misc]

    async def drain(self) -> None:
        """Write whatever is buffered, waiting for the socket to take it (and the EOF owed)."""
        if not self._out and not self._eof_due:
            return
        async with self._drain_lock:
            self._draining = True
            stream, sock, out = self._stream, self._socket, self._out
            try:
                while out:
                    if sock is None:
                        data = bytes(out)
                        out.clear()
                        await stream.send_all(data)
                        continue
                    fd = sock.fileno()
                    if fd < 0:
                        raise trio.ClosedResourceError
                    try:
                        written = os.write(fd, out)
                    except BlockingIOError:
                        await trio.lowlevel.wait_writable(sock)
                        continue
                    del out[:written]
                if self._eof_due:
                    self._eof_due = False
                    if isinstance(stream, trio.SocketStream):
                        await stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                out.clear()
                self._eof_due = False
                self._protocol.receive_eof()
                self._set_closed()
                raise self._closed from None  # type: ignore[misc]
            finally:
                self._draining = False

    # -- closing ------------------------------------------------------------------------------

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """The close handshake: send a close frame, read until the server's (or EOF).

        Unbounded in time: the caller bounds it. The TCP stream is the caller's to close."""
        self.stop_push()  # this task reads the rest itself
        if self._closed is not None:
            return
        protocol = self._protocol
        try:
            if protocol.state is State.OPEN:
                protocol.send_close(code, reason)
                self._buffer_output()
                await self.drain()
            while self._closed is None:
                await self._receive()
                self._frames.clear()
        except WsClosed:
            pass


async def _read_socket(sock: trio.socket.SocketType) -> bytes:
    """The next bytes from ``sock`` (b"" at EOF or when the connection breaks): wait until it
    is readable, then one read. Waiting first is one wake-up per arrival; trying first, as
    ``receive_some`` does, is an extra read or an extra scheduling point per arrival."""
    while True:
        try:
            await trio.lowlevel.wait_readable(sock)
        except trio.ClosedResourceError:  # closed by another task
            return b""
        fd = sock.fileno()
        if fd < 0:
            return b""
        try:
            return os.read(fd, _RECEIVE_SIZE)
        except BlockingIOError:
            continue
        except OSError:  # reset by the peer: the end of the connection, as EOF is
            return b""
