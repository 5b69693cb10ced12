"""The process's one WebSocket reading task (actors/ws_inbox.py): many connections' sockets
served in one pass, the pass bounds, a failing handler ending its connection only, and the
WebSocket actor reading through it. Connections here are ``WsConnection`` objects on one end of
a socket pair whose other end writes the server's frames (tests/actors/test_wsconn.py has the
push mode against a scripted peer and the embedded server)."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from actors.ws_inbox import PASS_LIMIT, WsInbox, ws_inbox
from actors.wsconn import QUIET_LOGGER, WsClosed, WsConnection


def _frame(text: str) -> bytes:
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])


_OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets():
    yield
    while _OPEN:
        _OPEN.pop().close()


def _connection() -> tuple[WsConnection, socket.socket]:
    """(an open client connection, the server's end of its socket): the handshake done between
    the two ``websockets`` protocols, sans-I/O."""
    mine, theirs = socket.socketpair()
    _OPEN.extend((mine, theirs))  # closed after the test
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/v1/realtime"), max_size=2**20,
                              logger=QUIET_LOGGER)
    server = ServerProtocol()
    protocol.send_request(protocol.connect())
    server.receive_data(b"".join(protocol.data_to_send()))
    server.send_response(server.accept(server.events_received()[0]))
    protocol.receive_data(b"".join(server.data_to_send()))
    protocol.events_received()
    assert protocol.state is State.OPEN
    return WsConnection(trio.SocketStream(trio.socket.from_stdlib_socket(mine)), protocol), theirs


async def _push(ws: WsConnection, on_message, inbox) -> None:
    """``receive_pushed`` until the close it raises (noted in ``ws.closed``)."""
    with pytest.raises(WsClosed):
        await ws.receive_pushed(on_message, inbox)


async def _until(predicate) -> None:
    while not predicate():
        await trio.sleep(0.001)


async def test_one_task_serves_every_ready_connection_in_one_pass(nursery, autojump_clock):
    inbox = WsInbox()
    nursery.start_soon(inbox.run)
    pairs = [_connection() for _ in range(8)]
    got: list[list[str]] = [[] for _ in pairs]
    for i, (ws, _) in enumerate(pairs):
        nursery.start_soon(_push, ws, got[i].append, inbox)
    await trio.testing.wait_all_tasks_blocked()
    assert len(inbox) == 8 and inbox.passes == 0  # nothing readable: no wake-up, no timer
    for i, (_, peer) in enumerate(pairs):
        peer.sendall(_frame(f"a{i}") + _frame(f"b{i}"))
    await _until(lambda: all(len(g) == 2 for g in got))
    assert got == [[f"a{i}", f"b{i}"] for i in range(8)]
    assert inbox.passes == 1  # eight connections, two messages each: one wake-up
    for _, peer in pairs:
        peer.close()  # EOF: each connection closes (1006) and leaves the inbox
    await _until(lambda: len(inbox) == 0)
    assert all(ws.closed is not None and ws.closed.code == 1006 for ws, _ in pairs)


async def test_a_pass_serves_pass_limit_sockets_and_the_rest_next(nursery, autojump_clock):
    inbox = WsInbox()
    nursery.start_soon(inbox.run)
    count = PASS_LIMIT + 8
    pairs = [_connection() for _ in range(count)]
    passes: list[int] = []
    for ws, _ in pairs:
        nursery.start_soon(_push, ws, lambda m: passes.append(inbox.passes), inbox)
    await trio.testing.wait_all_tasks_blocked()
    for _, peer in pairs:
        peer.sendall(_frame("x"))
    await _until(lambda: len(passes) == count)
    assert passes == [1] * PASS_LIMIT + [2] * 8
    nursery.cancel_scope.cancel()


async def test_a_frame_split_across_reads_is_handed_on_whole_and_once(nursery, autojump_clock):
    inbox = WsInbox()
    nursery.start_soon(inbox.run)
    ws, peer = _connection()
    got: list[str] = []
    nursery.start_soon(_push, ws, got.append, inbox)
    data = _frame("one") + _frame("two " * 100) + _frame("three")
    for cut in (3, 40, 200, len(data)):
        peer.sendall(data[:cut])
        data = data[cut:]
        await trio.sleep(0.01)
    await _until(lambda: len(got) == 3)
    assert got == ["one", "two " * 100, "three"]
    nursery.cancel_scope.cancel()


async def test_what_was_read_before_goes_first_from_the_calling_task(nursery, autojump_clock):
    inbox = WsInbox()
    nursery.start_soon(inbox.run)
    ws, peer = _connection()
    peer.sendall(_frame("first") + _frame("second"))
    assert await ws.get_message() == "first"  # one read: "second" waits in the connection
    got: list[tuple[str, bool]] = []
    me = trio.lowlevel.current_task()

    def on_message(message: str) -> None:
        got.append((message, trio.lowlevel.current_task() is me))

    async def push() -> None:
        nonlocal me
        me = trio.lowlevel.current_task()
        await _push(ws, on_message, inbox)

    nursery.start_soon(push)
    await trio.testing.wait_all_tasks_blocked()
    assert got == [("second", True)]
    peer.sendall(_frame("third"))
    await _until(lambda: len(got) == 2)
    assert got[1] == ("third", False)  # from the inbox's task
    nursery.cancel_scope.cancel()


async def test_a_failing_handler_ends_its_connection_only(nursery, autojump_clock):
    inbox = WsInbox()
    nursery.start_soon(inbox.run)
    (bad, bad_peer), (good, good_peer) = _connection(), _connection()
    got: list[str] = []
    ended: list[BaseException] = []

    def explode(message: str) -> None:
        raise ValueError(f"handler failed on {message}")

    async def run_bad() -> None:
        try:
            await bad.receive_pushed(explode, inbox)
        except ValueError as exc:
            ended.append(exc)

    nursery.start_soon(run_bad)
    nursery.start_soon(_push, good, got.append, inbox)
    await trio.testing.wait_all_tasks_blocked()
    bad_peer.sendall(_frame("boom"))
    good_peer.sendall(_frame("fine"))
    await _until(lambda: ended and got)
    assert str(ended[0]) == "handler failed on boom" and len(inbox) == 1
    good_peer.sendall(_frame("still fine"))
    await _until(lambda: len(got) == 2)
    assert got == ["fine", "still fine"] and inbox.broken is None
    nursery.cancel_scope.cancel()


async def test_a_broken_inbox_fails_every_connection_and_the_next_call_starts_another(nursery):
    first = ws_inbox()
    assert first is not None and ws_inbox() is first
    ws, peer = _connection()
    failed: list[BaseException] = []

    async def push() -> None:
        try:
            await ws.receive_pushed(lambda m: None, first)
        except RuntimeError as exc:
            failed.append(exc)

    nursery.start_soon(push)
    await trio.testing.wait_all_tasks_blocked()
    broken = RuntimeError("inbox bug")
    first.broken = broken
    first.fail_all(broken)
    await trio.testing.wait_all_tasks_blocked()
    assert failed == [broken] and len(first) == 0
    second = ws_inbox()
    assert second is not first and second is not None
    peer.close()


async def test_the_websocket_actor_reads_through_the_inbox(nursery):
    """A fleet's WebSocket sessions (default engine, plain TCP) are read by the run's inbox:
    every connected session's socket is in it, each one's events still arrive in order, and
    a removed session's socket leaves it."""
    from orchestrator.fleet import open_fleet

    async with open_fleet() as fleet:
        sids = [await fleet.add_session() for _ in range(3)]
        for sid in sids:
            await fleet.wait_connected(sid)
        inbox = ws_inbox()
        assert inbox is not None
        with trio.fail_after(10):
            await _until(lambda: len(inbox) == 3)  # each reader joins once started
            for sid in sids:
                assert await fleet.ask(sid, "hello")
        await fleet.remove_session(sids[0])
        assert len(inbox) == 2
