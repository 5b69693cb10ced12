"""actors/wsconn.py over real loopback sockets: a scripted peer (websockets' ServerProtocol on a
trio listener) for what the embedded server never does, and the embedded server itself."""

import logging

import pytest
import trio
import trio.testing
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from actors.wsconn import WsClosed, WsConnection, WsHandshakeError, WsRejected, ws_handshake
from standin import EmbeddedServer


async def _serve_once(handler, nursery) -> int:
    """A one-connection peer on 127.0.0.1; returns its port."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def accept_one() -> None:
        stream = await listeners[0].accept()
        await listeners[0].aclose()
        async with stream:
            await handler(stream)

    nursery.start_soon(accept_one)
    return listeners[0].socket.getsockname()[1]


class Peer:
    """The server side of one connection, frame by frame."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.protocol = ServerProtocol()
        self.received: list[Frame] = []

    async def accept(self) -> Request:
        while True:
            self.protocol.receive_data(await self.stream.receive_some(65536))
            for event in self.protocol.events_received():
                if isinstance(event, Request):
                    self.request = event
                    self.protocol.send_response(self.protocol.accept(event))
                    await self.flush()
                    return event

    async def flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                await self.stream.send_all(chunk)

    async def read_frame(self) -> Frame:
        while not self.received:
            data = await self.stream.receive_some(65536)
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            self.received.extend(self.protocol.events_received())
            if not data and not self.received:
                raise EOFError
        return self.received.pop(0)


async def _connect(port: int, **kw) -> tuple[trio.SocketStream, WsConnection]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        ws = await ws_handshake(stream, f"127.0.0.1:{port}", "/v1/realtime?model=m",
                                headers=kw.pop("headers", []),
                                max_message_size=kw.pop("max_message_size", 2**20))
    except BaseException:
        await stream.aclose()
        raise
    return stream, ws


async def test_fragments_pings_binary_invalid_utf8_and_the_close_code_reach_the_client(nursery):
    seen: dict[str, object] = {}
    peer_done = trio.Event()

    async def peer(stream):
        p = Peer(stream)
        request = await p.accept()
        seen["auth"] = request.headers.get("Authorization")
        p.protocol.send_text(b"frag", fin=False)
        p.protocol.send_continuation(b"men", fin=False)
        p.protocol.send_continuation(b"ted", fin=True)
        p.protocol.send_ping(b"pi")
        p.protocol.send_binary(b"\x00\x01")
        p.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe"))
        await p.flush()
        while True:  # the client's pong for our ping, then its text
            frame = await p.read_frame()
            if frame.opcode is Opcode.PONG:
                seen["pong"] = frame.data
            elif frame.opcode is Opcode.TEXT:
                seen["text"] = frame.data
                break
        p.protocol.send_close(4001, "bye")
        await p.flush()
        seen["close_echo"] = (await p.read_frame()).opcode
        peer_done.set()

    port = await _serve_once(peer, nursery)
    with trio.fail_after(10):
        stream, ws = await _connect(port, headers=[("Authorization", "Bearer sk-abc")])
        assert await ws.get_message() == "fragmented"
        assert await ws.get_message() == b"\x00\x01"
        assert await ws.get_message() == b"\xff\xfe"  # not UTF-8: handed on as bytes
        await ws.send_message("hello")
        with pytest.raises(WsClosed) as closed:
            await ws.get_message()
        await peer_done.wait()
    assert (closed.value.code, closed.value.reason) == (4001, "bye")
    assert ws.closed is closed.value
    assert seen == {"auth": "Bearer sk-abc", "pong": b"pi", "text": b"hello", "close_echo": Opcode.CLOSE}
    with pytest.raises(WsClosed):
        await ws.send_message("after the close")
    await stream.aclose()


async def test_a_refused_upgrade_raises_wsrejected_with_status_and_body(nursery):
    async def peer(stream):
        await stream.receive_some(65536)
        body = b'{"error": "invalid_api_key"}'
        await stream.send_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    port = await _serve_once(peer, nursery)
    with pytest.raises(WsRejected) as rejected:
        await _connect(port)
    assert rejected.value.status == 401 and b"invalid_api_key" in rejected.value.body


async def test_eof_during_the_handshake_is_a_handshake_error(nursery):
    async def peer(stream):
        await stream.receive_some(65536)

    port = await _serve_once(peer, nursery)
    with pytest.raises(WsHandshakeError):
        await _connect(port)


async def test_a_tcp_close_without_a_close_frame_is_1006(nursery):
    async def peer(stream):
        await Peer(stream).accept()

    port = await _serve_once(peer, nursery)
    with trio.fail_after(10):
        stream, ws = await _connect(port)
        with pytest.raises(WsClosed) as closed:
            await ws.get_message()
    assert closed.value.code == 1006
    await stream.aclose()


def _oversized_message_peer(answer: list[bytes], done: trio.Event):
    """A peer that sends one 2,000-byte text, then keeps the client's close frame in ``answer``."""
    async def peer(stream):
        p = Peer(stream)
        await p.accept()
        p.protocol.send_text(b"x" * 2000)
        await p.flush()
        answer.append((await p.read_frame()).data)  # the client's close frame
        done.set()
    return peer


async def test_a_message_over_the_limit_fails_the_connection_with_1009(nursery):
    done = trio.Event()
    answer: list[bytes] = []

    port = await _serve_once(_oversized_message_peer(answer, done), nursery)
    with trio.fail_after(10):
        stream, ws = await _connect(port, max_message_size=1000)
        async with stream:
            with pytest.raises(WsClosed) as closed:
                await ws.get_message()
            await done.wait()
    assert closed.value.code == 1009
    assert answer[0][:2] == (1009).to_bytes(2, "big")
    await stream.aclose()


async def test_against_the_embedded_server_ping_batches_and_close(nursery, caplog):
    caplog.set_level(logging.DEBUG)  # even at DEBUG the bearer key is never logged
    server = EmbeddedServer(api_keys={"sk-wsconn-test-KEYVALUE"})
    base = await nursery.start(server.serve)
    port = int(base.rsplit(":", 1)[1])
    with trio.fail_after(10):
        stream, ws = await _connect(port, headers=[("Authorization", "Bearer sk-wsconn-test-KEYVALUE")])
        assert '"session.created"' in await ws.get_message()
        await ws.send_texts(['{"type": "input_audio_buffer.clear"}',
                             '{"type": "conversation.item.retrieve", "item_id": "nope"}'])
        assert '"input_audio_buffer.cleared"' in await ws.get_message()
        assert '"error"' in await ws.get_message()
        async with trio.open_nursery() as inner:  # a pong is matched on the reading path

            async def read_on() -> None:
                while True:
                    await ws.get_message()

            inner.start_soon(read_on)
            await ws.ping()
            inner.cancel_scope.cancel()
        await ws.aclose(1000, "done")
        assert ws.closed is not None and ws.closed.code == 1000
    record = server.connections[-1]
    await record.closed.wait()
    assert record.closed_by == "client" and record.close_code == 1000
    assert [e["type"] for e in record.received] == ["input_audio_buffer.clear", "conversation.item.retrieve"]
    assert "KEYVALUE" not in caplog.text
    await stream.aclose()


async def test_writes_go_out_at_once_and_a_full_socket_keeps_them_in_order_for_drain(nursery):
    """``write_texts`` writes from the caller without waiting; when the peer stops reading and
    the socket fills, the rest stays buffered (False), later writes queue behind it, and
    ``drain`` delivers everything in order once the peer reads again."""
    reading = trio.Event()
    got: list[bytes] = []
    peer_done = trio.Event()
    total = 400

    async def peer(stream):
        p = Peer(stream)
        await p.accept()
        await reading.wait()
        while len(got) < total:
            frame = await p.read_frame()
            assert frame.opcode is Opcode.TEXT and frame.fin
            got.append(bytes(frame.data))
        peer_done.set()

    port = await _serve_once(peer, nursery)
    payload = "x" * 20_000
    with trio.fail_after(20):
        stream, ws = await _connect(port)
        assert ws.write_texts([f"0 {payload}"])  # an empty socket takes it at once
        sent = 1
        while ws.write_texts([f"{sent} {payload}"]):  # until the socket is full
            sent += 1
            assert sent < total, "the socket never filled"
        sent += 1
        async with trio.open_nursery() as inner:
            inner.start_soon(ws.drain)
            await trio.testing.wait_all_tasks_blocked()
            # the drain waits for the socket: a write now queues behind what it holds
            assert not ws.write_texts([f"{sent} {payload}"])
            sent += 1
            reading.set()
        assert not ws._out
        while sent < total:  # drained: straight to the socket again (or queued, then drained)
            await ws.send_texts([f"{sent} {payload}"])
            sent += 1
        await peer_done.wait()
    assert [int(m.split(b" ", 1)[0]) for m in got] == list(range(total))
    assert all(m.endswith(payload.encode()) for m in got)
    await stream.aclose()


async def test_a_write_after_the_stream_is_closed_raises_wsclosed_and_writes_nothing(nursery):
    async def peer(stream):
        await Peer(stream).accept()
        await trio.sleep_forever()

    port = await _serve_once(peer, nursery)
    with trio.fail_after(10):
        stream, ws = await _connect(port)
        await stream.aclose()  # its descriptor may be reused at once: never written through
        with pytest.raises(WsClosed) as closed:
            ws.write_texts(["late"])
    assert closed.value.code == 1006 and ws.closed is closed.value


# -- push mode: the process's inbox reads the socket (actors/ws_inbox.py) ----------------------


async def _pushed(ws: WsConnection, inbox) -> tuple[list, list, WsClosed]:
    """Run ``receive_pushed`` to its end: (messages, the tasks that handed each on, the close)."""
    got: list = []
    tasks: list = []

    def on_message(message) -> None:
        got.append(message)
        tasks.append(trio.lowlevel.current_task())

    with pytest.raises(WsClosed) as closed:
        await ws.receive_pushed(on_message, inbox)
    return got, tasks, closed.value


async def test_pushed_fragments_pings_binary_invalid_utf8_and_the_close_code_as_get_message(nursery):
    """The first test's peer, read by the inbox: the same messages in the same order, the ping
    answered, the close code raised and the close echoed; every message handed on from the
    inbox's task, none from the waiting task; the socket leaves the inbox at the close."""
    from actors.ws_inbox import ws_inbox

    seen: dict[str, object] = {}
    peer_done = trio.Event()

    async def peer(stream):
        p = Peer(stream)
        await p.accept()
        p.protocol.send_text(b"frag", fin=False)
        p.protocol.send_continuation(b"men", fin=False)
        await p.flush()
        await trio.sleep(0.05)  # the rest in another read
        p.protocol.send_continuation(b"ted", fin=True)
        p.protocol.send_ping(b"pi")
        p.protocol.send_binary(b"\x00\x01")
        p.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe"))
        p.protocol.send_text(b"plain")
        await p.flush()
        seen["pong"] = (await p.read_frame()).data
        p.protocol.send_close(4001, "bye")
        await p.flush()
        seen["close_echo"] = (await p.read_frame()).opcode
        peer_done.set()

    port = await _serve_once(peer, nursery)
    inbox = ws_inbox()
    with trio.fail_after(10):
        stream, ws = await _connect(port)
        got, tasks, closed = await _pushed(ws, inbox)
        await peer_done.wait()
    assert got == ["fragmented", b"\x00\x01", b"\xff\xfe", "plain"]
    assert tasks and all(t.name.endswith("websocket inbox") for t in tasks)
    assert (closed.code, closed.reason) == (4001, "bye") and ws.closed is closed
    assert seen == {"pong": b"pi", "close_echo": Opcode.CLOSE}
    assert len(inbox) == 0
    await stream.aclose()


async def test_pushed_a_tcp_close_without_a_close_frame_is_1006(nursery):
    from actors.ws_inbox import ws_inbox

    async def peer(stream):
        p = Peer(stream)
        await p.accept()
        p.protocol.send_text(b"last words")
        await p.flush()

    port = await _serve_once(peer, nursery)
    inbox = ws_inbox()
    with trio.fail_after(10):
        stream, ws = await _connect(port)
        got, _, closed = await _pushed(ws, inbox)
    assert got == ["last words"] and closed.code == 1006 and len(inbox) == 0
    await stream.aclose()


async def test_pushed_a_message_over_the_limit_fails_the_connection_with_1009(nursery):
    from actors.ws_inbox import ws_inbox

    done = trio.Event()
    answer: list[bytes] = []

    port = await _serve_once(_oversized_message_peer(answer, done), nursery)
    with trio.fail_after(10):
        stream, ws = await _connect(port, max_message_size=1000)
        async with stream:
            got, _, closed = await _pushed(ws, ws_inbox())
            await done.wait()
    assert got == [] and closed.code == 1009
    assert answer[0][:2] == (1009).to_bytes(2, "big")


async def test_pushed_against_the_embedded_server_with_a_ping_then_back_to_get_message(nursery):
    """Push mode over the embedded server: events handed on as they come, a ping's pong matched
    on the inbox's path; cancelling the waiting task takes the socket out of the inbox and
    ``get_message`` reads on; ``aclose`` does the close handshake."""
    from actors.ws_inbox import ws_inbox

    server = EmbeddedServer(api_keys={"sk-wsconn-push"})
    base = await nursery.start(server.serve)
    port = int(base.rsplit(":", 1)[1])
    inbox = ws_inbox()
    got: list[str] = []
    arrived = trio.Event()

    def on_message(message) -> None:
        got.append(message)
        if len(got) == 2:
            arrived.set()

    with trio.fail_after(10):
        stream, ws = await _connect(port, headers=[("Authorization", "Bearer sk-wsconn-push")])
        assert '"session.created"' in await ws.get_message()
        async with trio.open_nursery() as inner:
            inner.start_soon(ws.receive_pushed, on_message, inbox)
            await trio.testing.wait_all_tasks_blocked()
            assert len(inbox) == 1
            with pytest.raises(RuntimeError):  # one reader at a time
                await ws.get_message()
            await ws.send_texts(['{"type": "input_audio_buffer.clear"}',
                                 '{"type": "conversation.item.retrieve", "item_id": "nope"}'])
            await arrived.wait()
            await ws.ping()
            inner.cancel_scope.cancel()
        assert len(inbox) == 0
        await ws.send_message('{"type": "input_audio_buffer.clear"}')
        assert '"input_audio_buffer.cleared"' in await ws.get_message()
        await ws.aclose(1000, "done")
    assert '"input_audio_buffer.cleared"' in got[0] and '"error"' in got[1]
    assert ws.closed is not None and ws.closed.code == 1000
    await stream.aclose()


async def test_write_utf8_goes_straight_out_and_refuses_a_closing_or_closed_connection(nursery):
    """The audio clock's write: framed bytes straight to the socket while the connection is
    open; once the client's close is sent (closing) or the stream is closed, it raises
    WsClosed and writes nothing."""
    got: list[bytes] = []
    closing = trio.Event()

    async def peer(stream):
        p = Peer(stream)
        await p.accept()
        while True:
            frame = await p.read_frame()
            if frame.opcode is Opcode.CLOSE:
                closing.set()
                await trio.sleep_forever()
            got.append(bytes(frame.data))

    port = await _serve_once(peer, nursery)
    with trio.fail_after(10):
        stream, ws = await _connect(port)
        assert ws.write_utf8('{"a":"é"}'.encode()) and ws.write_utf8(b"second")
        with trio.move_on_after(0.2):
            await ws.aclose(1000)  # the close is sent; the peer never answers: closing
        await closing.wait()
        with pytest.raises(WsClosed):
            ws.write_utf8(b"after the close was sent")
        await stream.aclose()
        with pytest.raises(WsClosed):
            ws.write_utf8(b"after the stream closed")
    assert got == ['{"a":"é"}'.encode(), b"second"]
