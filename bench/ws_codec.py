"""ws-codec: CPU per WebSocket message of the two engines, framing and parsing only.

The hot path of a streaming session is one ``input_audio_buffer.append`` (20 ms of 24 kHz PCM16,
about 1.3 KB of JSON) per 20 ms each way through a WebSocket codec: the client frames and masks
it, the server parses and unmasks it. This measures, in one process and the same run, CPU time
(``time.process_time``) per message for

``wsproto``     trio-websocket's engine (client ``FrameProtocol.send_data``, server
                ``receive_bytes`` + ``received_frames``)
``websockets``  the ``websockets`` library's sans-I/O ``ClientProtocol``/``ServerProtocol``
                (what ``actors/wsconn.py`` and ``standin/front/lean.py`` use)

and prints medians over repeats, ranges, and the ratios websockets / wsproto.

Usage::

    python bench/ws_codec.py --messages 20000 --repeats 5 --json-out ws_codec.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def _message() -> bytes:
    pcm = os.urandom(960)
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}).encode()


def _cases(text: bytes) -> dict[str, Callable[[int], None]]:
    from websockets.client import ClientProtocol
    from websockets.protocol import State
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri
    from wsproto.frame_protocol import FrameProtocol

    decoded = text.decode()
    wire = FrameProtocol(client=True, extensions=[]).send_data(decoded, True)

    def wsproto_send(n: int) -> None:
        fp = FrameProtocol(client=True, extensions=[])
        for _ in range(n):
            fp.send_data(decoded, True)

    def websockets_send(n: int) -> None:
        cp = ClientProtocol(parse_uri("ws://x/"), state=State.OPEN)
        for _ in range(n):
            cp.send_text(text)
            cp.data_to_send()

    def wsproto_receive(n: int) -> None:
        fp = FrameProtocol(client=False, extensions=[])
        for _ in range(n):
            fp.receive_bytes(wire)
            for _frame in fp.received_frames():
                pass

    def websockets_receive(n: int) -> None:
        sp = ServerProtocol(state=State.OPEN, max_size=None)
        for _ in range(n):
            sp.receive_data(wire)
            sp.events_received()

    return {"client-send/wsproto": wsproto_send, "client-send/websockets": websockets_send,
            "server-receive/wsproto": wsproto_receive, "server-receive/websockets": websockets_receive}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    env = C.environment()
    text = _message()
    cases = _cases(text)
    runs: dict[str, list[float]] = {name: [] for name in cases}
    print(f"ws_codec: {args.messages} messages of {len(text)} bytes x {args.repeats} repeats; "
          f"load {env['loadavg_start']}")
    for rep in range(args.repeats):
        for name, fn in (cases.items() if rep % 2 == 0 else reversed(cases.items())):
            start = time.process_time()
            fn(args.messages)
            runs[name].append(1e6 * (time.process_time() - start) / args.messages)
    summary = {name: C.summary(values) for name, values in runs.items()}
    for name, s in summary.items():
        print(f"  {name:<26} {C.fmt(s, digits=2)} us/message")
    ratios = {step: C.ratio(summary[f"{step}/websockets"], summary[f"{step}/wsproto"])
              for step in ("client-send", "server-receive")}
    for step, r in ratios.items():
        print(f"  {step}: websockets/wsproto {r:.2f}x")
    line = ("SUMMARY ws_codec: websockets/wsproto CPU per message: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
            + f"; load {env['loadavg_start'][0]:.2f}")
    C.write_json(args.json_out, {"benchmark": "ws_codec", "env": env, "args": vars(args),
                                 "summary": summary, "ratios": ratios, "summary_line": line})
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
