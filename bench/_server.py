"""The embedded server for benchmarks, in its own process.

Prints ``URL KEY`` on one line once listening (127.0.0.1, port 0, a generated key), then serves
until stdin is closed.  Commands on stdin, one answer line each on stdout:

``drop [abort|close]``  every open connection is dropped at once (``FaultPlan(drop_after_s=0)``):
           ``abort`` = TCP shut down without a close frame (1006), ``close`` = close frame 1011
           (the server's default drop code); the plan is reset a few scheduler ticks later, so
           reconnects are accepted; answers ``dropped N`` once those connections are closed.
``accepts`` when each connection opened since the last drop was accepted (seconds after the
           drop, JSON list): the reconnect herd as the server sees it.
``stats``  ``ServerStats`` as JSON (counts of connections and events).

This is what ``standin.run_server`` does, plus the command channel (run_server
does not hand out its ``EmbeddedServer``), plus a listen backlog of ``--backlog`` (4096 by
default; hypercorn's default is 100, and ``EmbeddedServer.serve`` keeps it): with 100, a herd of
1,000 reconnects overflows the accept queue, SYNs are dropped and clients retry after 1, 3, 7 s.
``--backlog 100`` measures the server as shipped.
"""

from __future__ import annotations

import argparse
import json
import sys

import attrs
import trio

from standin import EmbeddedServer, FaultPlan, generate_api_key


_dropped_at = [0.0]


async def _drop_all(server: EmbeddedServer, mode: str) -> int:
    live = [r for r in server.connections if not r.closed.is_set()]
    _dropped_at[0] = trio.current_time()
    server.faults = FaultPlan(drop_after_s=0.0, drop_mode=mode)
    # Every connection's fault timer wakes on the change and drops at once (in the next
    # scheduler batch); reset the plan right after, so reconnects are not dropped again.
    for _ in range(3):
        await trio.sleep(0)
    server.faults = FaultPlan()
    with trio.move_on_after(5.0):
        for record in live:
            await record.closed.wait()
    return len(live)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backlog", type=int, default=4096)
    p.add_argument("--engine", choices=("lean", "hypercorn"), default="lean",
                   help="what serves HTTP/WebSocket (EmbeddedServer.engine)")
    args = p.parse_args()
    from hypercorn.config import Config

    Config.backlog = args.backlog  # read by hypercorn when it creates the listening socket
    key = generate_api_key()
    server = EmbeddedServer(api_keys={key}, engine=args.engine)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.serve, "127.0.0.1", 0)
        print(url, key, flush=True)
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                break
            command = line.strip()
            if command.startswith("drop"):
                mode = command.split()[1] if len(command.split()) > 1 else "abort"
                answer = f"dropped {await _drop_all(server, mode)} ({mode})"
            elif command == "accepts":
                answer = json.dumps([r.connected_at - _dropped_at[0] for r in server.connections
                                     if r.connected_at > _dropped_at[0]])
            elif command == "stats":
                stats = attrs.asdict(server.stats)
                answer = json.dumps(stats, default=str)
            else:
                answer = f"unknown command {command!r}"
            print(answer, flush=True)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
