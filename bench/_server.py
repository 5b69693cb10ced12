"""The embedded server for benchmarks, in its own process.

Prints ``URL KEY`` on one line once listening (127.0.0.1, port 0, a generated key), then serves
until stdin is closed.  Commands on stdin, one answer line each on stdout:

``drop``   every open connection is aborted at once (TCP closed without a close frame, via
           ``FaultPlan(drop_after_s=0)``), then the plan is reset so reconnects are accepted;
           answers ``dropped N``.
``stats``  ``ServerStats`` as JSON (counts of connections and events).

This is what ``orchestrator.server.run_server`` does, plus the command channel (run_server
does not hand out its ``EmbeddedServer``).
"""

from __future__ import annotations

import json
import sys

import attrs
import trio

from orchestrator.server import EmbeddedServer, FaultPlan, generate_api_key


async def _drop_all(server: EmbeddedServer) -> int:
    live = [r for r in server.connections if not r.closed.is_set()]
    server.faults = FaultPlan(drop_after_s=0.0, drop_mode="abort")
    with trio.move_on_after(5.0):
        for record in live:
            await record.closed.wait()
    server.faults = FaultPlan()
    return len(live)


async def main() -> None:
    key = generate_api_key()
    server = EmbeddedServer(api_keys={key})
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.serve, "127.0.0.1", 0)
        print(url, key, flush=True)
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                break
            command = line.strip()
            if command == "drop":
                answer = f"dropped {await _drop_all(server)}"
            elif command == "stats":
                stats = attrs.asdict(server.stats)
                answer = json.dumps(stats, default=str)
            else:
                answer = f"unknown command {command!r}"
            print(answer, flush=True)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
