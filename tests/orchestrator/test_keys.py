"""KeyManager against the embedded server's real HTTP app (in-process ASGI, no sockets),
so that time can run on the MockClock."""

import httpx
import pytest
import trio

from actors.credentials import Secret
from orchestrator.keys import KeyManager, KeyMintError, MissingApiKey, refresh_ahead
from standin import EmbeddedServer, FaultPlan
from standin.app import RealtimeApp

KEY = "sk-test-keys-0123456789"
EPOCH = 1_900_000_000.0


class RecordingTransport(httpx.ASGITransport):
    """The real app, in-process; remembers when each request was made (trio clock)."""

    def __init__(self, app):
        super().__init__(app=app)
        self.times = []

    async def handle_async_request(self, request):
        self.times.append(trio.current_time())
        return await super().handle_async_request(request)


def _setup():
    clock = lambda: EPOCH + trio.current_time()  # noqa: E731 - wall clock driven by the trio clock
    server = EmbeddedServer(api_keys={KEY}, clock=clock)
    http = httpx.AsyncClient(transport=RecordingTransport(RealtimeApp(server)))
    keys = KeyManager("http://embedded", Secret(KEY), ttl=60, refresh_margin=10, clock=clock, http=http)
    return server, keys, http


async def test_secret_is_cached_until_the_margin_then_refreshed(autojump_clock):
    server, keys, http = _setup()
    async with http:
        first = await keys.credential()
        assert first.reveal().startswith("ek_") and first.expires_at == pytest.approx(EPOCH + trio.current_time() + 60, abs=1)
        await trio.sleep(49)
        assert await keys.credential() is first
        await trio.sleep(2)  # now within 10 s of expiry
        second = await keys.credential()
        assert second is not first and keys.mints == 2
        assert server.authenticate(second.reveal()).kind == "client_secret"


async def test_refresh_ahead_mints_exactly_at_the_margin(autojump_clock):
    server, keys, http = _setup()
    mint_times = http._transport.times
    async with http, trio.open_nursery() as nursery:
        nursery.start_soon(refresh_ahead, keys)
        await trio.sleep(125)
        nursery.cancel_scope.cancel()
    t0 = mint_times[0]
    # expiry is whole seconds (server's int()), so each refresh is 50 s (+<1 s) after the mint
    assert [round(t - t0) for t in mint_times] == [0, 50, 100]


async def test_concurrent_callers_share_one_mint(autojump_clock):
    server, keys, http = _setup()
    results = []

    async def call():
        results.append(await keys.credential())

    async with http, trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(call)
    assert keys.mints == 1 and len(http._transport.times) == 1
    assert len(results) == 50 and len({r.reveal() for r in results}) == 1


async def test_mint_refused_raises_without_the_key_in_the_message(autojump_clock):
    server, keys, http = _setup()
    server.faults = FaultPlan(reject_keys=True)
    async with http:
        with pytest.raises(KeyMintError) as info:
            await keys.credential()
    assert info.value.status == 401
    assert KEY not in str(info.value) and KEY not in repr(keys)


async def test_direct_mode_and_missing_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    direct = KeyManager("http://x", Secret(KEY), mode="direct")
    assert (await direct.credential()).reveal() == KEY
    with pytest.raises(MissingApiKey):
        await KeyManager("http://x").credential()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert KeyManager("http://x", mode="direct").api_key.reveal() == KEY
