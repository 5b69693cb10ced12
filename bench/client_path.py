"""client-path: rtfleet's client work per audio frame sent and per server event received, timed
over real sockets but without a server process or other sessions' scheduling (the best of several
rounds of CPU time is reported, so the load of the machine's other processes matters less than
in ``bench/ws_fleet.py``, which measures the whole fleet against a server).

Stages, for ``--sessions`` ready WebSocket sessions (a ``SessionLink`` and ``ClientCore`` each, a
``WsConnection`` on one end of a socket pair, the actor's direct writer installed as the
WebSocket actor installs it):

``send``     one frame per session per 20 ms through the audio clock's tick (``_run_tick`` ->
             ``PacedStream.step`` -> the link -> the core -> the frame written to the socket),
             the ``rtfleet-clock`` row's hot path; the peer's reads are not timed
``receive``  the server's events of a streamed turn (the stand-in model's: audio and transcript
             deltas, the turn's items, the response) framed as the server frames them, read from
             the socket and handled as the process's WebSocket inbox does when the socket is
             readable (``WsConnection._on_readable``: one read, the frames cut, then
             ``handle_incoming`` per message: parse, check, the core's mirror and turns, the
             stamp, the fleet's publish to one broad subscriber, which takes them; a tree
             without the inbox: the actor's reader loop, ``get_message``)

Figures: us of CPU per frame sent and per event received.

``--root DIR`` times another checkout's code (e.g. the commit before a change), in a subprocess
with that tree on ``sys.path``; ``--compare DIR`` prints this tree and DIR side by side.

Usage::

    python bench/client_path.py --compare /tmp/base
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

ROUNDS = 7
SESSIONS = 100
TICKS = 400  # 100 frame periods of 4 ticks: 10,000 frames a round at 100 sessions
TURNS = 2


def _server_events() -> list[str]:
    """The events the stand-in's model sends for ``TURNS`` streamed turns (1 s of tone, 1 s of
    silence, in 20 ms appends; server VAD), ``session.created`` first, as JSON text."""
    import base64
    import random

    import numpy as np

    from standin.model.events import IdFactory
    from standin.model.realtime import RealtimeSession

    rate, n = 24_000, 480
    t = np.arange(rate) / rate
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    pcm = tone + bytes(2 * rate)
    chunks = [base64.b64encode(pcm[i:i + 2 * n]).decode() for i in range(0, len(pcm), 2 * n)]
    session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, ids=IdFactory(random.Random(1)))
    events = list(session.start())
    for k in range(TURNS * len(chunks)):
        now = k * 0.02
        events += session.receive_text(json.dumps({"type": "input_audio_buffer.append",
                                                   "audio": chunks[k % len(chunks)]}), now)
        events += session.handle_timer(now)
    end = TURNS * len(chunks) * 0.02
    for k in range(500):  # the last answer's audio plays out
        events += session.handle_timer(end + k * 0.02)
    return [json.dumps(event, separators=(",", ":")) for event in events]


def _measure(rounds: int, sessions: int, ticks: int) -> dict[str, float]:
    import functools
    import itertools
    import socket

    import trio
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.protocol import State
    from websockets.uri import parse_uri

    from actors.credentials import Secret
    from actors.events import Transport
    from actors.inbound import InboundState, handle_incoming
    from actors.link import SessionLink
    from actors.pacer import AudioClock
    from actors.proto.client import ClientCore
    from actors.websocket import _write_now
    try:
        from actors.websocket import _write_append
    except ImportError:  # a tree before the writer of appends
        _write_append = None
    from actors.wsconn import QUIET_LOGGER, WsConnection
    from orchestrator.fleet import Fleet
    from orchestrator.keys import KeyManager
    from orchestrator.router import Router

    chunks = _common.pcm_chunks_b64()
    texts = _server_events()
    created, rest = texts[0], texts[1:]
    wire = b"".join(Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
                    for text in rest)

    async def main() -> dict[str, float]:
        router = Router()
        keys = KeyManager("http://127.0.0.1:9", Secret("sk-bench", kind="api_key"), mode="direct")
        fleet = Fleet(None, "ws://127.0.0.1:9", keys, router, None)  # type: ignore[arg-type]
        subscriber = fleet.subscribe(kinds=["server"], buffer=float("inf"))  # as ws_fleet consumes
        peers, links, conns = [], [], []
        for i in range(sessions):
            mine, theirs = socket.socketpair()
            for sock in (mine, theirs):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            protocol = ClientProtocol(parse_uri("ws://127.0.0.1/v1/realtime"), max_size=16 * 2**20,
                                      logger=QUIET_LOGGER)
            protocol.state = State.OPEN
            ws = WsConnection(trio.SocketStream(trio.socket.from_stdlib_socket(mine)), protocol)
            link = SessionLink(f"s{i:05d}", Transport.WEBSOCKET, ClientCore(), fleet._publish)
            fleet.links[link.session_id] = link
            link.core.connection_started()
            handle_incoming(link, InboundState(), created)
            link.take_outgoing()  # the (empty) restore
            state = InboundState()
            writer = functools.partial(_write_now, link, ws, state, lambda exit: None, False)
            if _write_append is None:
                link.attach_writer(writer)
            else:  # as the actor installs them: the direct writer and its writer of appends
                link.attach_writer(writer, functools.partial(_write_append, link, ws, state,
                                                             lambda exit: None, False))
            peers.append(theirs)
            links.append(link)
            conns.append((ws, state))

        def drain_peers() -> None:
            for peer in peers:
                try:
                    while peer.recv(1 << 20, socket.MSG_DONTWAIT):
                        pass
                except BlockingIOError:
                    pass

        def taken() -> int:
            count = 0
            while True:
                try:
                    subscriber.receive_nowait()
                except trio.WouldBlock:
                    return count
                count += 1

        taken()
        clock = AudioClock()
        for link in links:
            clock.add(link, itertools.cycle(chunks))
        tick = 0

        async def send_round() -> tuple[float, int]:
            nonlocal tick
            spent, sent = 0.0, clock.frames
            for _ in range(ticks // 40):
                start = time.process_time()
                for _ in range(40):
                    clock._run_tick(tick, clock.time_of(tick))
                    tick += 1
                spent += time.process_time() - start
                drain_peers()
            return spent, clock.frames - sent

        pushed = hasattr(WsConnection, "receive_pushed")  # a tree with the WebSocket inbox

        async def receive_round() -> tuple[float, int]:
            spent, events = 0.0, 0
            for peer, link, (ws, state) in zip(peers, links, conns):
                peer.sendall(wire)  # the server's frames, waiting in the socket
                start = time.process_time()
                if pushed:  # what the inbox's task does when the socket is readable
                    ws._on_message = functools.partial(handle_incoming, link, state)
                    ws._wake = trio.Event()
                    handled = 0
                    for _ in range(10_000):  # one read of up to 64 KiB a call
                        ws._on_readable()
                        handled += taken()
                        if handled >= len(rest):
                            break
                    events += handled
                else:
                    for _ in rest:
                        handle_incoming(link, state, await ws.get_message())
                    events += taken()
                spent += time.process_time() - start
            return spent, events

        best = {"send": 1e9, "receive": 1e9}
        for _ in range(rounds):
            spent, count = await send_round()
            best["send"] = min(best["send"], 1e6 * spent / count)
            spent, count = await receive_round()
            best["receive"] = min(best["receive"], 1e6 * spent / count)
        for peer in peers:
            peer.close()
        return best

    return trio.run(main)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_compare_options(p, ROUNDS)
    p.add_argument("--sessions", type=int, default=SESSIONS)
    p.add_argument("--ticks", type=int, default=TICKS, help="clock ticks a round (4 per 20 ms)")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(_measure(args.rounds, args.sessions, args.ticks)))
        return 0
    rows = _common.compare_rows(__file__, args, ["--rounds", str(args.rounds), "--sessions", str(args.sessions), "--ticks", str(args.ticks)])
    _common.print_compare("client_path", f"client-path: us of CPU per frame sent / event received, {args.sessions} sessions, best of {args.rounds} rounds", rows, 2, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
