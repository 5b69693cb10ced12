"""The SIP shell's timer task (actors/sip_shell.py) runs the agent's timers only when one is due:
a wake from a datagram in or out only re-arms it. The embedded server's UAS on loopback, OPTIONS
pings from a plain UDP socket, on the trio MockClock."""

from __future__ import annotations

import trio

from actors.sip_shell import udp_socket
from standin import EmbeddedServer


def _options(port: int, branch: int, local: int) -> bytes:
    return (f"OPTIONS sip:standin@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{branch:08d}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:ping@127.0.0.1>;tag=t{branch}\r\n"
            f"To: <sip:standin@127.0.0.1:{port}>\r\n"
            f"Call-ID: ping-{branch}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


async def test_sip_datagrams_do_not_run_the_agents_timers_until_one_is_due(autojump_clock):
    server = EmbeddedServer.with_generated_key(sip_port=0)
    caller = trio.socket.from_stdlib_socket(udp_socket("127.0.0.1", 0))
    local = caller.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        ua = server.sip.ua
        handled: list[float] = []
        original = ua.handle_timer

        def counting(now: float) -> None:
            handled.append(now)
            original(now)

        ua.handle_timer = counting
        for k in range(20):  # 20 transactions, each answered at once (200 OK)
            await caller.sendto(_options(server.sip.port, k, local), ("127.0.0.1", server.sip.port))
            reply, _ = await caller.recvfrom(65535)
            assert reply.startswith(b"SIP/2.0 200")
        assert len(ua._transactions) == 20 and ua.get_timer() is not None
        # 40 datagrams in and out woke the timer task; none of its timers was due
        assert handled == []
        await trio.sleep(ua.get_timer() - trio.current_time() + 0.001)
        await trio.sleep(0.01)
        # the transactions' Timer J came due: handled, and the transactions are gone
        assert handled and len(ua._transactions) == 0
        nursery.cancel_scope.cancel()
    caller.close()
