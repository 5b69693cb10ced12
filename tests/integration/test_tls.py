"""TLS is verified by default for wss:// and https:// targets (issue 7, security).

The embedded server's lean front serves TLS on loopback with a certificate from a throwaway CA
(``trustme``). A fleet that does not trust that CA never gets a session (the certificate is
refused, the reason says so, and no key is minted); trusting it (``SSL_CERT_FILE``, which the
default SSL context reads) is all it takes to run a turn over wss://.
"""

from __future__ import annotations

import ssl
from functools import partial

import pytest
import trio
import trustme

from actors.events import ConnectionState, EventKind
from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer
from standin.app import RealtimeApp
from standin.front.lean import serve_front

KEY = "sk-tls-test"


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(nursery, ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = EmbeddedServer(api_keys={KEY})
    url = await nursery.start(partial(serve_front, RealtimeApp(server), "127.0.0.1", 0, ssl_context=context))
    return server, url


async def test_an_untrusted_certificate_is_refused_for_wss(tls_server):
    server, url = tls_server
    assert url.startswith("https://")
    async with open_fleet(url, api_key=KEY, key_mode="direct") as fleet:
        states = fleet.subscribe(kinds=[EventKind.STATE], buffer=100)
        sid = await fleet.add_session()
        with trio.fail_after(10):
            await fleet.wait_state(sid, ConnectionState.RECONNECTING)
        reasons = []
        while True:
            try:
                reasons.append(states.receive_nowait().payload["reason"])
            except trio.WouldBlock:
                break
        await fleet.remove_session(sid)
    assert any("CERTIFICATE_VERIFY_FAILED" in r for r in reasons), reasons
    assert server.connections == []  # no WebSocket session was ever opened
    assert KEY not in " ".join(reasons)


async def test_a_trusted_certificate_runs_a_turn_over_wss(tls_server, ca, tmp_path, monkeypatch):
    server, url = tls_server
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    async with open_fleet(url, api_key=KEY, key_mode="direct") as fleet:
        done = fleet.subscribe(types=["response.done"], buffer=10)
        sid = await fleet.add_session()
        with trio.fail_after(10):
            await fleet.wait_connected(sid)
            await fleet.send(sid, user_text("Hello over TLS"))
            await fleet.send(sid, {"type": "response.create", "response": {"output_modalities": ["text"]}})
            final = await done.receive()
        await fleet.remove_session(sid)
    assert final.payload["response"]["status"] == "completed"
    assert server.connections[-1].closed_by == "client"


async def test_key_minting_over_https_verifies_the_certificate(tls_server):
    server, url = tls_server
    async with open_fleet(url, api_key=KEY) as fleet:  # ephemeral keys minted over https
        infos = fleet.subscribe(kinds=[EventKind.INFO], buffer=100)
        sid = await fleet.add_session()
        with trio.fail_after(10):
            await fleet.wait_state(sid, ConnectionState.RECONNECTING)
            error = (await infos.receive()).payload["key_error"]
        await fleet.remove_session(sid)
    assert "CERTIFICATE_VERIFY_FAILED" in error
    assert server.stats.client_secrets_minted == 0
    assert KEY not in error
