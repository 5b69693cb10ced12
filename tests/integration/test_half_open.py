"""A peer that goes silent (half-open TCP: nothing closes, nothing arrives) is detected by
ping/pong and the session reconnects."""

from functools import partial

import trio

from actors.events import ConnectionState
from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer


class BlackHoleProxy:
    """A TCP proxy on loopback; ``swallow()`` makes the open connections silently drop all bytes."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.swallowing = trio.Event()
        self.connections = 0

    async def handle(self, client):
        self.connections += 1
        swallow = self.swallowing.is_set()  # connections made after swallow() work normally
        upstream = await trio.open_tcp_stream("127.0.0.1", self.upstream_port)
        async with client, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(self.pump, client, upstream, swallow)
            nursery.start_soon(self.pump, upstream, client, swallow)

    async def pump(self, source, sink, swallowed_before):
        try:
            async for data in source:
                if self.swallowing.is_set() and not swallowed_before and self.connections == 1:
                    continue  # the first connection's bytes vanish: a half-open connection
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def swallow(self):
        self.swallowing.set()


async def test_silent_peer_is_detected_by_ping_and_the_session_reconnects():
    server = EmbeddedServer(api_keys={"sk-local-test"})
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.serve)
        port = int(url.rsplit(":", 1)[1])
        proxy = BlackHoleProxy(port)
        listeners = await nursery.start(partial(trio.serve_tcp, proxy.handle, 0, host="127.0.0.1"))
        proxy_port = listeners[0].socket.getsockname()[1]
        async with open_fleet(f"http://127.0.0.1:{proxy_port}", api_key="sk-local-test",
                              key_mode="direct", connect_params={"ping_interval": 0.2, "ping_timeout": 0.5},
                              config={"output_modalities": ["text"]}) as fleet:
            sid = await fleet.add_session()
            await fleet.wait_connected(sid)
            await fleet.send(sid, user_text("before", item_id="item_before"))
            states = fleet.subscribe(sessions=[sid], kinds=["state"])
            proxy.swallow()
            with trio.fail_after(10):
                change = await states.receive()
                assert change.payload["to"] == "reconnecting"
                assert "half-open" in change.payload["reason"]
                await fleet.wait_state(sid, ConnectionState.CONNECTED)
            assert fleet.status(sid).reconnects == 1
            done = fleet.subscribe(sessions=[sid], types=["response.done"])
            await fleet.send(sid, user_text("after"))
            await fleet.send(sid, {"type": "response.create"})
            with trio.fail_after(10):
                await done.receive()
        nursery.cancel_scope.cancel()
