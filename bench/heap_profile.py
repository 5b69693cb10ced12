"""Heap growth of a steady run, by source line: what outlives its session?

Runs the embedded server and a fleet in one process, over loopback. Each round opens
``--sessions`` sessions, gives each a text turn and an audio turn (server VAD), and removes
them. tracemalloc snapshots taken after the warm-up round and after ``--rounds`` more are
diffed; the top growth by file:line is printed, split into the stand-in (``standin/``) and the
client (everything else). A store that grows with ended sessions shows up here.

    python3 bench/heap_profile.py --sessions 50 --rounds 6
"""

from __future__ import annotations

import argparse
import base64
import gc
import tracemalloc

import trio

from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer, ModelConfig
from standin.testing import pcm16_silence, pcm16_tone, split_chunks

ROOT = str(__import__("pathlib").Path(__file__).resolve().parents[1]) + "/"
AUDIO = [{"type": "input_audio_buffer.append", "audio": base64.b64encode(c).decode()}
         for c in split_chunks(pcm16_silence(200) + pcm16_tone(600) + pcm16_silence(700))]


async def one_session(fleet, done: trio.Event | None = None) -> None:
    sid = await fleet.add_session()
    await fleet.wait_connected(sid)
    async with fleet.subscribe(sessions=[sid], types=["response.done"]) as answers:
        await fleet.send(sid, user_text("hello there"))
        await fleet.send(sid, {"type": "response.create"})
        await answers.receive()
        for event in AUDIO:
            await fleet.send(sid, event)
        await answers.receive()
    await fleet.remove_session(sid, forget=True)


async def round_of(fleet, sessions: int) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(sessions):
            nursery.start_soon(one_session, fleet)


def _ours(traceback) -> tracemalloc.Frame:
    """The innermost frame in this repository (what allocated, in our terms)."""
    for frame in reversed(traceback):
        if ROOT in frame.filename:
            return frame
    return traceback[-1]


def grouped(second: tracemalloc.Snapshot, first: tracemalloc.Snapshot) -> dict[tuple[str, int], list[int]]:
    """size and count growth by our innermost frame."""
    growth: dict[tuple[str, int], list[int]] = {}
    for d in second.compare_to(first, "traceback"):
        frame = _ours(d.traceback)
        entry = growth.setdefault((frame.filename.split(ROOT)[-1], frame.lineno), [0, 0])
        entry[0] += d.size_diff
        entry[1] += d.count_diff
    return growth


def top(growth: dict[tuple[str, int], list[int]], standin: bool, n: int) -> list[str]:
    rows = sorted(((k, v) for k, v in growth.items() if k[0].startswith("standin/") == standin),
                  key=lambda kv: kv[1][0], reverse=True)
    return [f"  {size / 1024:+9.1f} KiB {count:+7d} blocks  {name}:{line}"
            for (name, line), (size, count) in rows[:n]]


async def main(args: argparse.Namespace) -> None:
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    async with open_fleet(server=server, api_key=server.api_key, seed=1,
                          config={"output_modalities": ["audio"]}) as fleet:
        await round_of(fleet, args.sessions)
        gc.collect()
        first = tracemalloc.take_snapshot()
        for _ in range(args.rounds):
            await round_of(fleet, args.sessions)
        gc.collect()
        second = tracemalloc.take_snapshot()
        ended = args.sessions * args.rounds
        growth = grouped(second, first)
        grown = sum(v[0] for v in growth.values())
        print(f"{ended} sessions ended between the snapshots; heap {grown / 1024:+.1f} KiB "
              f"({grown / ended:+.0f} bytes per ended session)")
        standin = sum(v[0] for k, v in growth.items() if k[0].startswith("standin/"))
        print(f"stand-in: {standin / 1024:+.1f} KiB ({standin / ended:+.0f} B/session); "
              f"records kept: {len(server.connections)}")
        print("top growth, stand-in:")
        print("\n".join(top(growth, True, args.top)))
        print("top growth, client and the rest:")
        print("\n".join(top(growth, False, args.top)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--top", type=int, default=12)
    tracemalloc.start(25)
    trio.run(main, parser.parse_args())
