"""A lean WebSocket client connection: trio I/O around the ``websockets`` sans-I/O protocol.

The protocol work (handshake, framing, masking with its C speed-up, control frames, the close
handshake, the message size limit) is the ``websockets`` library's :class:`ClientProtocol`; this
module only moves bytes between it and a trio stream. Measured per 1.3 KB append message with
``python bench/ws_codec.py``: framing costs about 0.26x what wsproto (trio-websocket's engine)
costs, parsing about 0.33x.

Differences from trio-websocket that matter to the actor:

* no background task: whoever calls :meth:`WsConnection.get_message` reads the socket (the
  actor has exactly one reader); pings are answered and pongs matched on that path;
* :meth:`WsConnection.send_texts` frames a batch of messages into one ``send_all``;
* handshake failures raise :class:`WsRejected` (an HTTP status other than 101, with the start
  of the body) or :class:`WsHandshakeError`; a closed connection raises :class:`WsClosed` with
  the close code (1006 when the TCP connection ended without a close frame);
* the library is given a logger that never logs at debug level, so the ``Authorization``
  header is never written to a log even when the application logs everything at DEBUG.
"""

from __future__ import annotations

import logging
import os

import trio
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

__all__ = ["QUIET_LOGGER", "MessageAssembler", "WsClosed", "WsConnection", "WsHandshakeError", "WsRejected",
           "ws_handshake"]

#: A logger outside the logging hierarchy, at WARNING: ``websockets`` logs request headers
#: (with the bearer key) at DEBUG when its logger allows it, so it must never allow it.
QUIET_LOGGER = logging.Logger("rtfleet.websocket.wire", level=logging.WARNING)
_RECEIVE_SIZE = 65536


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
    while True:
        data = await stream.receive_some(_RECEIVE_SIZE)
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        events = protocol.events_received()
        for index, event in enumerate(events):
            if isinstance(event, Response):
                exc = protocol.handshake_exc
                if isinstance(exc, InvalidStatus):
                    raise WsRejected(exc.response.status_code, exc.response.body or b"")
                if exc is not None:
                    raise WsHandshakeError(type(exc).__name__)
                connection = WsConnection(stream, protocol)
                # Frames that came in the same read as the response (a close, or a message
                # over the size limit that already failed the connection, included).
                connection._frames.extend(e for e in events[index + 1:] if isinstance(e, Frame))
                await connection._absorb(eof=False)
                return connection
        if not data:
            raise WsHandshakeError("connection closed during the handshake")


class WsConnection:
    """One open client connection; see the module docstring for its contract."""

    def __init__(self, stream: trio.abc.Stream, protocol: ClientProtocol) -> None:
        self._stream = stream
        self._protocol = protocol
        self._send_lock = trio.StrictFIFOLock()
        self._frames: list[Frame] = []
        self._assembler = MessageAssembler()
        self._pongs: dict[bytes, trio.Event] = {}
        self._closed: WsClosed | None = None

    @property
    def closed(self) -> WsClosed | None:
        """Why the connection closed, or None while it is open."""
        return self._closed

    # -- receiving ----------------------------------------------------------------------------

    async def get_message(self) -> str | bytes:
        """The next complete message (text as ``str``); raises :class:`WsClosed` at the end."""
        while True:
            while self._frames:
                message = self._take(self._frames.pop(0))
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

    async def _receive(self) -> None:
        try:
            data = await self._stream.receive_some(_RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            self._protocol.receive_data(data)
        else:
            self._protocol.receive_eof()
        await self._absorb(eof=not data)

    async def _absorb(self, eof: bool) -> None:
        """Take what the protocol parsed, send what it owes, and note whether it is over."""
        protocol = self._protocol
        self._frames.extend(protocol.events_received())
        await self._flush()  # pongs, the echo of a close frame, a close after a protocol error
        if eof or protocol.state is State.CLOSED or protocol.close_rcvd is not None or (
            protocol.state is State.CLOSING and protocol.parser_exc is not None
        ):
            self._set_closed()

    def _set_closed(self) -> None:
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

    async def send_message(self, text: str) -> None:
        await self.send_texts((text,))

    async def send_texts(self, texts: "list[str] | tuple[str, ...]") -> None:
        """Frame every text message and write them with one ``send_all``, in order."""
        if self._closed is not None:
            raise self._closed
        protocol = self._protocol
        if protocol.state is not State.OPEN:
            raise WsClosed(1006, "closing")
        for text in texts:
            protocol.send_text(text.encode())
        await self._flush()

    async def ping(self) -> None:
        """Send a ping and wait for its pong (raises :class:`WsClosed` if the connection ends)."""
        if self._closed is not None:
            raise self._closed
        payload = os.urandom(4)
        waiter = self._pongs[payload] = trio.Event()
        self._protocol.send_ping(payload)
        await self._flush()
        await waiter.wait()
        if self._closed is not None:
            raise self._closed

    async def _flush(self) -> None:
        chunks = self._protocol.data_to_send()
        if not chunks:
            return
        eof = chunks[-1] == b""
        data = b"".join(chunks)
        async with self._send_lock:
            try:
                if data:
                    await self._stream.send_all(data)
                if eof and isinstance(self._stream, trio.SocketStream):
                    await self._stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._protocol.receive_eof()
                self._set_closed()
                raise self._closed from None  # type: ignore[misc]

    # -- closing ------------------------------------------------------------------------------

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """The close handshake: send a close frame, read until the server's (or EOF).

        Unbounded in time: the caller bounds it. The TCP stream is the caller's to close."""
        if self._closed is not None:
            return
        protocol = self._protocol
        try:
            if protocol.state is State.OPEN:
                protocol.send_close(code, reason)
                await self._flush()
            while self._closed is None:
                await self._receive()
                self._frames.clear()
        except WsClosed:
            pass


class MessageAssembler:
    """Sans-I/O: data frames in, whole messages out (text as ``str``), control frames ignored.

    The protocol object has already enforced the order of fragments and the size limit; a text
    message that is not valid UTF-8 is handed on as ``bytes`` (the receiver reports it)."""

    def __init__(self) -> None:
        self._fragments: list[bytes] = []
        self._text = False

    def take(self, frame: Frame) -> str | bytes | None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                return _decode(frame.data) if opcode is Opcode.TEXT else bytes(frame.data)
            self._fragments = [bytes(frame.data)]
            self._text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                return _decode(data) if self._text else data
        return None


def _decode(data: bytes | bytearray | memoryview) -> str | bytes:
    try:
        return bytes(data).decode()
    except UnicodeDecodeError:
        return bytes(data)
