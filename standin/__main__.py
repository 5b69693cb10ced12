"""``python -m standin``: the embedded server alone, for tests and benchmarks.

Unlike ``rtfleet serve`` (the user-facing command), this entry is meant to be driven by another
program: it prints exactly one JSON line on stdout once listening,
``{"url": "http://127.0.0.1:PORT", "pid": N}``, and nothing else. It stops cleanly (closing
every call) on SIGTERM, on SIGINT, or, with ``--exit-on-stdin-eof``, when its stdin closes
(so it never outlives a parent that holds the pipe).

The standard key comes from ``--api-key`` or ``RTFLEET_SERVER_API_KEY`` (required; never
printed). ``--webrtc on|off|auto`` (default ``auto``: the trio-asyncio loop opens on the first
call); ``--demo-token`` (or ``RTFLEET_DEMO_TOKEN``) enables ``/demo``. ``--voice
tone|speech[:VOICE]`` (or ``RTFLEET_VOICE``) is ``rtfleet serve --voice``: answers sound as the
440 Hz tone (default) or as espeak-ng's speech of their words; a bad value or a missing
espeak-ng exits 2 before listening, saying why.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

import trio

from standin.model.realtime import ModelConfig
from standin.server import EmbeddedServer
from standin.speech import SpeechError, SpeechVoice, voice_from_option


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m standin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=os.environ.get("RTFLEET_SERVER_API_KEY"))
    parser.add_argument("--webrtc", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--demo-token", default=os.environ.get("RTFLEET_DEMO_TOKEN"))
    parser.add_argument("--pace", type=float, default=1.0, help="model audio pace (0: no pacing)")
    parser.add_argument("--rtc-dtx", choices=("on", "off"), default="on",
                        help="WebRTC calls send no audio while the model is silent (default on)")
    parser.add_argument("--voice", default=os.environ.get("RTFLEET_VOICE", "tone"), metavar="tone|speech[:VOICE]",
                        help="how answers sound: 'tone' (440 Hz, the default), 'speech' (espeak-ng; "
                             "'speech:en-gb' picks its voice), as rtfleet serve --voice [RTFLEET_VOICE]")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    return parser


async def _serve(args: argparse.Namespace, voice: SpeechVoice | None) -> None:
    server = EmbeddedServer(
        api_keys={args.api_key}, webrtc={"auto": None, "on": True, "off": False}[args.webrtc],
        demo_token=args.demo_token, model_config=ModelConfig(pace=args.pace, voice=voice),
        rtc_dtx=args.rtc_dtx == "on",
    )
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.serve, args.host, args.port)
        print(json.dumps({"url": url, "pid": os.getpid()}), flush=True)

        async def stop_on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

        async def stop_on_eof() -> None:
            stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
            async with stdin:
                while await stdin.receive_some():
                    pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(stop_on_signal)
        if args.exit_on_stdin_eof:
            nursery.start_soon(stop_on_eof)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.api_key:
        print("error: --api-key or RTFLEET_SERVER_API_KEY is required", file=sys.stderr)
        return 2
    try:
        voice = voice_from_option(args.voice)
    except (ValueError, SpeechError) as exc:
        print(f"error: --voice: {exc}", file=sys.stderr)
        return 2
    try:
        trio.run(_serve, args, voice)
    finally:
        if voice is not None:
            voice.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
