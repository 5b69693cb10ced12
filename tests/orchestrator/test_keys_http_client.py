"""The key manager keeps one HTTP client (issue 13): making an ``httpx.AsyncClient`` costs
~50 ms of blocking CPU (its SSL context), so a client per mint stalled every session of the
process at each key refresh. Against the embedded server over loopback: N mints make one
client, the fleet's close closes it, a manager never closed leaves no socket, and a mint
cancelled midway leaves the next one working."""

from __future__ import annotations

import gc
import warnings

import httpx
import pytest
import trio

from actors.credentials import Secret
from orchestrator.fleet import open_fleet
from orchestrator.keys import KeyManager
from standin import EmbeddedServer

KEY = "sk-test-http-client-0123456789"


@pytest.fixture
def made(monkeypatch):
    """Every ``httpx.AsyncClient`` made from now on (the real class, counted)."""
    clients: list[httpx.AsyncClient] = []

    class CountedClient(httpx.AsyncClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            clients.append(self)

    monkeypatch.setattr(httpx, "AsyncClient", CountedClient)
    return clients


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer(api_keys={KEY})
    url = await nursery.start(server.serve)
    return server, url


async def test_many_mints_make_one_client(server, made):
    server, url = server
    keys = KeyManager(url, Secret(KEY))
    secrets = [await keys.credential(force=True) for _ in range(5)]
    assert len({s.reveal() for s in secrets}) == 5 and keys.mints == 5
    assert server.stats.client_secrets_minted == 5
    assert made == [keys.shared_http.client]
    await keys.aclose()
    assert made[0].is_closed and keys.shared_http.client is None


async def test_the_fleets_close_closes_the_client_it_shares(server, made):
    server, url = server
    async with open_fleet(url, api_key=KEY) as fleet:
        sids = [await fleet.add_session() for _ in range(3)]
        for sid in sids:
            await fleet.wait_connected(sid)
        await fleet.keys.credential(force=True)
        client = fleet.keys.shared_http.client
        assert client is not None and not client.is_closed
        assert made == [client] and fleet.keys.mints == 2
    assert client.is_closed


async def test_a_manager_never_closed_leaves_no_socket(server):
    server, url = server
    keys = KeyManager(url, Secret(KEY))
    await keys.credential()
    await keys.credential(force=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        del keys
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


async def _pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    async for data in source:
        await sink.send_all(data)
    await sink.send_eof()


async def test_a_mint_cancelled_midway_leaves_the_next_one_working(server, nursery, made):
    """A loopback proxy holds the first mint's request unanswered (until the client closes
    its connection) and forwards every later one to the embedded server."""
    server, url = server
    upstream_port = int(url.rsplit(":", 1)[1])
    held, dropped = trio.Event(), trio.Event()
    connections = 0

    async def handle(client: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            request = b""
            while b"client_secrets" not in request:
                request += await client.receive_some()
            held.set()
            while await client.receive_some():  # the rest of the request, then b"": closed
                pass
            dropped.set()
            return
        upstream = await trio.open_tcp_stream("127.0.0.1", upstream_port)
        async with upstream, client, trio.open_nursery() as pipes:
            pipes.start_soon(_pipe, client, upstream)
            pipes.start_soon(_pipe, upstream, client)

    listeners = await nursery.start(trio.serve_tcp, handle, 0)
    port = listeners[0].socket.getsockname()[1]
    keys = KeyManager(f"http://127.0.0.1:{port}", Secret(KEY))

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as mint:
            mint.start_soon(keys.credential)
            await held.wait()
            scope.cancel()
    assert scope.cancelled_caught and keys.current is None and keys.mints == 0
    with trio.fail_after(5):
        await dropped.wait()

    secret = await keys.credential()
    assert secret.reveal().startswith("ek_") and keys.mints == 1
    assert server.stats.client_secrets_minted == 1
    assert len(made) == 1 and not made[0].is_closed  # the same client, still usable
    await keys.aclose()
