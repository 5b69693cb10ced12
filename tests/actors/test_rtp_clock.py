"""RTP on the process's audio clock (actors/rtp_shell.py over actors/pacer.py), on the trio
MockClock: real UDP sockets on loopback, every call's datagrams sent from the clock's one task.

A receiver socket records the virtual time each datagram arrived (loopback delivery is done
when ``sendto`` returns, so that is the time it was sent)."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio

from actors.pacer import audio_clock
from actors.proto.rtp.packet import RtpPacket
from actors.proto.rtp.stream import PTIME, RtpStream
from actors.rtp_inbox import rtp_inbox
from actors.rtp_shell import run_rtp
from actors.sip_shell import udp_socket


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Receiver:
    """A UDP socket recording (virtual time, ssrc, sequence) per datagram."""

    def __init__(self) -> None:
        self.sock = trio.socket.from_stdlib_socket(udp_socket("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.got: list[tuple[float, int, int]] = []

    async def run(self) -> None:
        while True:
            data, _ = await self.sock.recvfrom(2048)
            packet = RtpPacket.decode(data)
            self.got.append((trio.current_time(), packet.ssrc, packet.sequence))

    def by_ssrc(self) -> dict[int, list[tuple[float, int]]]:
        out: dict[int, list[tuple[float, int]]] = {}
        for at, ssrc, seq in self.got:
            out.setdefault(ssrc, []).append((at, seq))
        return out


@asynccontextmanager
async def receiving():
    """A running :class:`Receiver`, stopped and closed on the way out."""
    receiver = Receiver()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver.run)
            yield receiver
            nursery.cancel_scope.cancel()
    finally:
        receiver.sock.close()


def _call_socket():
    return trio.socket.from_stdlib_socket(udp_socket("127.0.0.1", 0))


async def test_every_calls_rtp_goes_out_every_20ms_from_the_one_clock_with_phases_spread(autojump_clock):
    async with receiving() as receiver:
        rtp_inbox()  # the run's one epoll for every call's receiving side, open for the run
        fds_before = _open_fds()
        streams = [RtpStream.create(0) for _ in range(8)]
        sockets = [_call_socket() for _ in streams]
        ticked: list[int] = []
        async with trio.open_nursery() as calls:
            for stream, sock in zip(streams, sockets):
                stream.play([bytes([k]) * 160 for k in range(10)])
                calls.start_soon(partial(run_rtp, sock, stream, receiver.address, on_tick=ticked.append))
            # the calls join at this instant, in slots 5 ms apart: up to 215 ms, 11 frames each
            await trio.sleep(0.2175)
            clock = audio_clock()
            ticks = clock.ticks
            calls.cancel_scope.cancel()
        for sock in sockets:
            sock.close()
        assert _open_fds() == fds_before  # the clock's send descriptors are closed too
        assert len(rtp_inbox()) == 0  # and out of the inbox
        got = receiver.by_ssrc()
        assert set(got) == {s.ssrc for s in streams}
        first = min(at for at, _, _ in receiver.got)
        phases = set()
        for stream in streams:
            times = [at for at, _ in got[stream.ssrc]]
            seqs = [seq for _, seq in got[stream.ssrc]]
            assert len(times) == 11 == stream.rtp_sent  # 200 ms: frames at 0, 20, ..., 200 ms
            assert seqs == [(seqs[0] + k) % 65536 for k in range(11)]
            assert all(b - a == pytest.approx(PTIME) for a, b in zip(times, times[1:]))
            assert stream.audio_frames_sent == 10  # the queued audio, then silence
            # each on its due time, measured per frame
            assert len(stream.lateness.samples) == 11 and max(map(abs, stream.lateness.samples)) < 1e-9
            phases.add(round((times[0] - first) / (PTIME / clock.slots)) % clock.slots)
        assert phases == set(range(clock.slots))  # eight calls over the clock's four phase slots
        assert ticks <= 11 * clock.slots  # the clock's wake-ups: per slot, not per call
        assert ticked.count(1) == 8 * 11


async def test_a_stalled_clock_sends_the_missed_frames_once_and_no_early_lateness(autojump_clock):
    async with receiving() as receiver:
        stream = RtpStream.create(8)
        sock = _call_socket()
        async with trio.open_nursery() as calls:
            calls.start_soon(run_rtp, sock, stream, receiver.address)
            while stream.rtp_sent < 3:
                await trio.sleep(0.001)
            autojump_clock.jump(0.07)  # the process stalled for 70 ms (three and a half frames)
            await trio.sleep(0.1)
            calls.cancel_scope.cancel()
        sock.close()
        seqs = [seq for _, _, seq in receiver.got]
        assert seqs == [(seqs[0] + k) % 65536 for k in range(len(seqs))]  # no gap, no repeat
        assert len(seqs) == stream.rtp_sent
        late = stream.lateness.samples
        assert min(late) >= 0.0  # the clock's catch-up ticks did not each count as a frame
        assert max(late) > 0.04 and abs(late[-1]) < 1e-9
        arrivals = [at for at, _, _ in receiver.got]
        assert max(b - a for a, b in zip(arrivals, arrivals[1:])) > 0.07  # the stall itself
        # after it, the missed frames went out together once (a catch-up burst), then 20 ms again
        assert sorted(round(b - a, 6) for a, b in zip(arrivals, arrivals[1:]))[0] == 0.0


async def test_a_failing_callback_ends_its_call_only_with_the_error(autojump_clock):
    async with receiving() as receiver:
        good, bad = RtpStream.create(0), RtpStream.create(0)
        good_sock, bad_sock = _call_socket(), _call_socket()
        ticks: list[int] = []

        def failing(sent: int) -> None:
            ticks.append(sent)
            if len(ticks) == 3:
                raise RuntimeError("the call's handler broke")

        async with trio.open_nursery() as calls:
            calls.start_soon(run_rtp, good_sock, good, receiver.address)
            with pytest.raises(RuntimeError, match="handler broke"):
                await run_rtp(bad_sock, bad, receiver.address, on_tick=failing)
            sent = bad.rtp_sent
            await trio.sleep(0.1)
            assert bad.rtp_sent == sent == 3
            assert good.rtp_sent > 5
            calls.cancel_scope.cancel()
        good_sock.close()
        bad_sock.close()
        assert len(audio_clock()) == 0


async def test_a_call_300ms_behind_skips_once_what_the_rule_says_and_keeps_time_after(autojump_clock):
    """A stall of 300 ms, then a process whose every scheduler pass (6 ms) is longer than the
    clock's 5 ms tick: the call gives the stalled frames up once (more than ``max_burst``
    behind: all but one), then every frame goes out within two passes of its due time. One
    tick per pass lost 1 ms a pass, passed 100 ms behind and skipped again and again."""
    async with receiving() as receiver:
        stream = RtpStream.create(0)
        sock = _call_socket()
        done = trio.Event()

        async def busy() -> None:
            while not done.is_set():
                autojump_clock.jump(0.006)
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as calls:
            calls.start_soon(run_rtp, sock, stream, receiver.address)
            while stream.rtp_sent < 3:
                await trio.sleep(0.001)
            behind_from = stream.pacer.next_deadline()
            autojump_clock.jump(0.3)
            due_then = int((trio.current_time() - behind_from) / PTIME) + 1
            calls.start_soon(busy)
            while stream.rtp_sent < 3 + 1 + 100:  # the catch-up frame, then 2 s of frames
                await trio.sleep(0)
            done.set()
            calls.cancel_scope.cancel()
        sock.close()
        assert stream.pacer.skipped == due_then - 1 == 14
        late = list(stream.lateness.samples)
        assert max(late) > 0.25
        assert max(late[4:]) <= 2 * 0.006 + 1e-9
