"""The process's one RTP receiving task (actors/rtp_inbox.py), with real UDP sockets on
loopback and the trio MockClock: loopback delivery is done when ``sendto`` returns, so a
datagram sent at a virtual time is readable at that time."""

from __future__ import annotations

import socket

import pytest
import trio

from actors.proto.rtp.packet import RtpPacket
from actors.proto.rtp.stream import RtpStream
from actors.rtp_inbox import DRAIN_LIMIT, PASS_BUDGET, PASS_LIMIT, RtpInbox, rtp_inbox
from actors.rtp_shell import run_rtp
from actors.sip_shell import udp_socket


def _pair() -> tuple[socket.socket, socket.socket]:
    """(a non-blocking receiving socket, a sending socket) on loopback."""
    rx = udp_socket("127.0.0.1", 0)
    rx.setblocking(False)
    tx = udp_socket("127.0.0.1", 0)
    return rx, tx


def _close(inbox: RtpInbox, pairs: list) -> None:
    for rx, tx in pairs:
        inbox.remove(rx)
        rx.close()
        tx.close()


def _task_names(task) -> list[str]:
    return [task.name] + [name for nursery in task.child_nurseries
                          for child in nursery.child_tasks for name in _task_names(child)]


async def test_one_task_drains_every_ready_socket_in_one_pass(nursery, autojump_clock):
    inbox = RtpInbox()
    nursery.start_soon(inbox.run)
    pairs = [_pair() for _ in range(8)]
    got: list[list[tuple[bytes, float]]] = [[] for _ in pairs]
    for i, (rx, _) in enumerate(pairs):
        inbox.add(rx, lambda data, now, i=i: got[i].append((data, now)), pytest.fail)
    await trio.sleep(1.0)
    assert inbox.passes == 0  # nothing readable: the task sleeps, no timer
    for i, (rx, tx) in enumerate(pairs):
        tx.sendto(b"call %d" % i, rx.getsockname())
    sent_at = trio.current_time()
    while inbox.received < 8:
        await trio.sleep(0.001)
    assert got == [[(b"call %d" % i, sent_at)] for i in range(8)]  # when it came, not later
    assert inbox.passes == 1  # eight sockets, one wake-up
    _close(inbox, pairs)
    assert len(inbox) == 0


async def test_a_pass_drains_pass_limit_sockets_and_the_rest_first_in_the_next(nursery, autojump_clock):
    inbox = RtpInbox()
    nursery.start_soon(inbox.run)
    count = PASS_LIMIT + 8
    pairs = [_pair() for _ in range(count)]
    order: list[tuple[int, int]] = []  # (pass, socket)

    def got(i: int) -> None:
        order.append((inbox.passes, i))
        if len(order) == PASS_LIMIT:  # the end of the first pass: those it served (but the
            for rx, tx in pairs[:PASS_LIMIT - 1]:  # one being drained) get another
                tx.sendto(b"y", rx.getsockname())

    for i, (rx, _) in enumerate(pairs):
        inbox.add(rx, lambda data, now, i=i: got(i), pytest.fail)
    for rx, tx in pairs:
        tx.sendto(b"x", rx.getsockname())
    while len(order) < count + PASS_LIMIT - 1:
        await trio.sleep(0.001)
    passes = [p for p, _ in order]
    assert [passes.count(p) for p in (1, 2, 3)] == [PASS_LIMIT, PASS_LIMIT, 7]  # the bound
    second = [i for p, i in order if p == 2]
    assert set(second[:8]) == set(range(PASS_LIMIT, count))  # those left out went first
    _close(inbox, pairs)


async def test_a_pass_ends_after_pass_budget_and_the_next_goes_on(nursery, autojump_clock):
    inbox = RtpInbox()
    nursery.start_soon(inbox.run)
    pairs = [_pair() for _ in range(10)]
    passes: list[int] = []

    def costly(data: bytes, now: float) -> None:
        passes.append(inbox.passes)
        autojump_clock.jump(0.002)  # a frame that ends a caller's turn: 2 ms of the model

    for rx, _ in pairs:
        inbox.add(rx, costly, pytest.fail)
    for rx, tx in pairs:
        tx.sendto(b"x", rx.getsockname())
    while len(passes) < 10:
        await trio.sleep(0.001)
    # 2, 4, 6 ms: the third crosses PASS_BUDGET (5 ms), the pass yields, the next goes on
    assert PASS_BUDGET == 0.005 and [passes.count(p) for p in (1, 2, 3, 4)] == [3, 3, 3, 1]
    _close(inbox, pairs)


async def test_a_flood_is_taken_drain_limit_a_pass_and_none_is_lost(nursery, autojump_clock):
    inbox = RtpInbox()
    nursery.start_soon(inbox.run)
    rx, tx = _pair()
    got: list[bytes] = []
    inbox.add(rx, lambda data, now: got.append(data), pytest.fail)
    count = 2 * DRAIN_LIMIT + 3
    for k in range(count):
        tx.sendto(b"%d" % k, rx.getsockname())
    while len(got) < count:
        await trio.sleep(0.001)
    assert got == [b"%d" % k for k in range(count)]
    assert inbox.passes == 3  # 8 + 8 + 3: the rest waited in the socket, level-triggered
    inbox.remove(rx)
    rx.close()
    tx.close()


async def test_a_failing_delivery_ends_its_socket_only(nursery, autojump_clock):
    inbox = RtpInbox()
    nursery.start_soon(inbox.run)
    (bad_rx, bad_tx), (good_rx, good_tx) = _pair(), _pair()
    errors: list[BaseException] = []
    good: list[bytes] = []

    def broken(data: bytes, now: float) -> None:
        raise ValueError("the call's handler broke")

    inbox.add(bad_rx, broken, errors.append)
    inbox.add(good_rx, lambda data, now: good.append(data), pytest.fail)
    for k in range(3):
        bad_tx.sendto(b"x", bad_rx.getsockname())
        good_tx.sendto(b"%d" % k, good_rx.getsockname())
        await trio.sleep(0.02)
    assert [str(e) for e in errors] == ["the call's handler broke"]  # once: then it was removed
    assert good == [b"0", b"1", b"2"] and len(inbox) == 1
    for s in (bad_rx, bad_tx, good_rx, good_tx):
        s.close()


async def test_calls_receive_through_the_runs_one_inbox_and_echo_rtt_is_the_arrival_time(autojump_clock):
    """Two calls on run_rtp: each one's datagrams reach its own stream through the inbox, no
    reader task per call; an echo of a call's own packet gives its true round trip (here
    delayed 30 ms by the far end), not a tick-rounded one."""
    far = trio.socket.from_stdlib_socket(udp_socket("127.0.0.1", 0))
    streams = [RtpStream.create(0, track_echo=True) for _ in range(2)]
    socks = [trio.socket.from_stdlib_socket(udp_socket("127.0.0.1", 0)) for _ in streams]

    async def send_back(data: bytes, source) -> None:
        await trio.sleep(0.03)
        await far.sendto(data, source)

    async def echo_later(nursery) -> None:  # the far end sends each packet back 30 ms later
        while True:
            data, source = await far.recvfrom(2048)
            nursery.start_soon(send_back, data, source)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo_later, nursery)
        for stream, sock in zip(streams, socks):
            nursery.start_soon(run_rtp, sock, stream, far.getsockname())
        await trio.sleep(0.5)
        inbox = rtp_inbox()
        assert len(inbox) == 2
        names = _task_names(trio.lowlevel.current_root_task())
        nursery.cancel_scope.cancel()
    assert len(rtp_inbox()) == 0  # both calls left the inbox
    assert not any("reader" in name for name in names)
    for stream in streams:
        assert stream.rtp_received >= 20  # its own echoes came back to it
        assert stream.echo_rtt.samples and list(stream.echo_rtt.samples) == pytest.approx(
            [0.03] * len(stream.echo_rtt.samples), abs=1e-9)
    for sock in [far, *socks]:
        sock.close()


async def test_one_inbox_per_run(autojump_clock):
    assert rtp_inbox() is rtp_inbox()


async def test_a_call_whose_audio_handler_fails_ends_with_that_error_and_the_other_goes_on(autojump_clock):
    peer = udp_socket("127.0.0.1", 0)
    good, bad = RtpStream.create(0), RtpStream.create(0)
    good_sock, bad_sock = (trio.socket.from_stdlib_socket(udp_socket("127.0.0.1", 0)) for _ in "ab")
    heard: list[bytes] = []

    def broken(audio: bytes) -> None:
        raise RuntimeError("the call's audio handler broke")

    packet = RtpPacket(0, 1, 160, 1234, b"\xff" * 160).encode()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: run_rtp(good_sock, good, peer.getsockname(), on_audio=heard.append))
        await trio.sleep(0.05)
        peer.sendto(packet, bad_sock.getsockname())
        with pytest.raises(RuntimeError, match="audio handler broke"):
            await run_rtp(bad_sock, bad, peer.getsockname(), on_audio=broken)
        assert len(rtp_inbox()) == 1  # the failed call left the inbox and the clock
        peer.sendto(packet, good_sock.getsockname())
        await trio.sleep(0.05)
        assert heard == [b"\xff" * 160] and good.rtp_sent > 3
        nursery.cancel_scope.cancel()
    for s in (peer, good_sock, bad_sock):
        s.close()


async def test_without_epoll_a_call_keeps_a_reader_task_of_its_own(autojump_clock, monkeypatch):
    import actors.rtp_shell as shell

    monkeypatch.setattr(shell, "rtp_inbox", lambda: None)  # what rtp_inbox() gives off Linux
    peer = udp_socket("127.0.0.1", 0)
    stream = RtpStream.create(0)
    sock = trio.socket.from_stdlib_socket(udp_socket("127.0.0.1", 0))
    heard: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: run_rtp(sock, stream, peer.getsockname(), on_audio=heard.append))
        await trio.sleep(0.05)
        names = _task_names(trio.lowlevel.current_root_task())
        peer.sendto(RtpPacket(0, 1, 160, 99, b"\x7f" * 160).encode(), sock.getsockname())
        await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert any(name.endswith("reader") for name in names)
    assert heard == [b"\x7f" * 160] and stream.rtp_sent >= 3
    for s in (peer, sock):
        s.close()
