"""append-path: the embedded server's synchronous work per ``input_audio_buffer.append``, timed
without sockets or a scheduler (so without the load of the machine's other processes mattering
much: the best of several rounds of CPU time is reported).

Stages, each over one streaming turn repeated (1 s of tone then 1 s of silence in 20 ms appends,
as ``bench/ws_fleet.py`` sends; server VAD; the model's answer planned and its events made):

``frame``   the masked WebSocket frame to the message text: the ``websockets`` protocol and the
            message assembler, or (where it exists) ``standin/front/frames.py``'s reader, by
            its ``texts`` (a read of whole appends: what the lean front calls) where it has one
``model``   the session model: ``RealtimeSession.receive_text`` + ``handle_timer`` (JSON parse or
            the bare-append scan, base64, VAD, record; the turn's events)
``total``   both, plus what the connection does per message (stats, timer poke)

``--writer`` says how the appends are written: ``sdk`` as ``json.dumps`` writes them (the
``openai`` SDK, hand-written scripts: ``{"type": …, "audio": …}``), ``rtfleet`` as the rtfleet
client does (``actors.proto.realtime.events.encode_client_event``: compact, with an
``event_id`` after the audio).

``--audio unique`` makes every append's audio its own (the turn's tone and silence with a
different dither of one LSB in each round and append: no digital silence, nothing the server
has seen before); ``repeated`` (the default) repeats one turn, as ``bench/ws_fleet.py``'s
sessions and a fleet replaying the same files do.

``--root DIR`` times another checkout's code (e.g. the commit before a change), in a subprocess
with that tree on ``sys.path``; ``--compare DIR`` prints this tree and DIR side by side.

Usage::

    python bench/append_path.py --compare /tmp/base
    python bench/append_path.py --compare /tmp/base --writer rtfleet
    python bench/append_path.py --compare /tmp/base --writer rtfleet --audio unique
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

ROUNDS = 7
APPENDS = 5000


def _measure(rounds: int = ROUNDS, appends: int = APPENDS, writer: str = "sdk",
             audio: str = "repeated") -> dict[str, float]:
    import base64
    import random

    import numpy as np
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri

    from actors.wsconn import QUIET_LOGGER, MessageAssembler
    from standin.model.events import IdFactory
    from standin.model.realtime import RealtimeSession
    from standin.model.timer import ModelTimer

    try:
        from standin.front.frames import FrameReader
    except ImportError:
        FrameReader = None  # type: ignore[assignment,misc]

    rate, n = 24_000, 480
    t = np.arange(rate) / rate
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    pcm = tone + bytes(2 * rate)
    if audio == "unique":  # every append of a round its own (one LSB of dither), and what the
        turn = np.frombuffer(pcm, dtype="<i2")  # server keeps of audio seen is forgotten below
        dither = np.random.default_rng(7).integers(-1, 2, ((appends + 99) // 100, len(turn)))
        pcm = b"".join((turn + d).astype("<i2").tobytes() for d in dither)
    chunks = [base64.b64encode(pcm[i:i + 2 * n]).decode() for i in range(0, len(pcm), 2 * n)]
    if writer == "rtfleet":
        from actors.proto.realtime.events import encode_client_event

        texts = [encode_client_event({"type": "input_audio_buffer.append", "audio": c, "event_id": f"evt_c_{k + 1}"})
                 for k, c in enumerate(chunks)]
    else:
        texts = [json.dumps({"type": "input_audio_buffer.append", "audio": c}) for c in chunks]

    client = ClientProtocol(parse_uri("ws://x/v1/realtime"), logger=QUIET_LOGGER)
    client.send_request(client.connect())
    head = b"".join(client.data_to_send())
    frames = [Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=[]) for text in texts]

    def protocol() -> ServerProtocol:
        server = ServerProtocol(max_size=16 * 2**20, logger=QUIET_LOGGER)
        server.receive_data(head)
        server.send_response(server.accept(server.events_received()[0]))
        server.data_to_send()
        return server

    def read_text(reader: Any, data: bytes) -> str:
        """One read of one append, as the lean front reads it."""
        texts = getattr(reader, "texts", None)
        if texts is not None:
            return texts(data)[0].decode()
        return reader.feed(data)[0].data.decode()

    def frame_stage() -> float:
        server = protocol()
        assembler = MessageAssembler()
        reader = FrameReader(server) if FrameReader is not None else None
        start = time.process_time()
        for k in range(appends):
            data = frames[k % len(frames)]
            if reader is not None:
                _ = read_text(reader, data)
            else:
                server.receive_data(data)
                for frame in server.events_received():
                    _ = {"type": "websocket.receive", "text": assembler.take(frame)}
        return time.process_time() - start

    def forget() -> None:
        """``--audio unique``: nothing of the audio seen in an earlier stage is known."""
        if audio != "unique":
            return
        import standin.model.append as append_module
        import standin.model.vad as vad_module

        for store in (getattr(append_module, "_DECODED", None), getattr(vad_module, "_ENERGIES", None)):
            if store is not None:
                store.clear()

    def model_stage(with_frames: bool) -> float:
        forget()
        session = RealtimeSession.create(model="gpt-realtime", wall_now=0.0, ids=IdFactory(random.Random(1)))
        session.start()
        timer = ModelTimer(session)
        server = protocol()
        assembler = MessageAssembler()
        reader = FrameReader(server) if FrameReader is not None else None
        start = time.process_time()
        for k in range(appends):
            now = k * 0.02
            if with_frames:
                data = frames[k % len(frames)]
                if reader is not None:
                    text = read_text(reader, data)
                else:
                    server.receive_data(data)
                    text = {"type": "websocket.receive",
                            "text": assembler.take(server.events_received()[0])}["text"]
            else:
                text = texts[k % len(texts)]
            session.receive_text(text, now)
            session.handle_timer(now)
            if with_frames:
                timer.poke()
        return time.process_time() - start

    best = {"frame": 1e9, "model": 1e9, "total": 1e9}
    for _ in range(rounds):
        best["frame"] = min(best["frame"], frame_stage())
        best["model"] = min(best["model"], model_stage(False))
        best["total"] = min(best["total"], model_stage(True))
    return {k: 1e6 * v / appends for k, v in best.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_compare_options(p, ROUNDS)
    p.add_argument("--appends", type=int, default=APPENDS, help="appends a round")
    p.add_argument("--audio", choices=("repeated", "unique"), default="repeated",
                   help="one turn repeated (as ws_fleet's sessions) or every append's audio its own")
    p.add_argument("--writer", choices=("sdk", "rtfleet"), default="sdk",
                   help="appends as json.dumps writes them (sdk) or as the rtfleet client does")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(_measure(args.rounds, args.appends, args.writer, args.audio)))
        return 0
    rows = _common.compare_rows(__file__, args, ["--rounds", str(args.rounds), "--appends", str(args.appends),
                                                  "--writer", args.writer, "--audio", args.audio])
    _common.print_compare("append_path", f"append-path: us of CPU per append ({args.writer} appends, {args.audio} audio), best of "
                          f"{args.rounds} rounds of {args.appends}", rows, 1, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
