"""The browser demo's HTTP side: ``GET /demo`` and the key-vending ``POST /v1/demo/session``."""

from __future__ import annotations

import re

import httpx
import pytest

from standin import EmbeddedServer
from standin.demo.page import PAGE

TOKEN = "demo-token-for-tests"


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer.with_generated_key(demo_token=TOKEN)
    await nursery.start(server.serve)
    return server


async def request(server: EmbeddedServer, method: str, path: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        return await client.request(method, path, **kwargs)


async def test_the_page_is_served_self_contained_with_a_strict_policy(server):
    response = await request(server, "GET", "/demo")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    html = response.text
    assert "<script>" in html and 'id="remote"' in html and "oai-events" in html
    # no CDN, nothing fetched from elsewhere: no URL with a scheme or protocol-relative src/href
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html)
    assert "innerHTML" not in html  # server data reaches the DOM through textContent only


async def test_the_key_endpoint_needs_the_caller_token(server):
    for headers in ({}, {"X-Rtfleet-Demo-Token": "wrong"}, {"Authorization": f"Bearer {server.api_key}"}):
        response = await request(server, "POST", "/v1/demo/session", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_demo_token"
    response = await request(server, "POST", "/v1/demo/session", headers={"X-Rtfleet-Demo-Token": TOKEN},
                             json={"expires_after": {"anchor": "created_at", "seconds": 60},
                                   "session": {"type": "realtime", "instructions": "Demo."}})
    assert response.status_code == 200
    body = response.json()
    assert body["value"].startswith("ek_") and body["session"]["instructions"] == "Demo."
    assert server.secrets.lookup(body["value"], now=server.clock())[0] is not None
    assert server.stats.demo_secrets_minted == 1
    # the body is checked like client_secrets'
    response = await request(server, "POST", "/v1/demo/session", headers={"X-Rtfleet-Demo-Token": TOKEN},
                             json={"expires_after": {"seconds": 5}})
    assert response.status_code == 400 and response.json()["error"]["param"] == "expires_after.seconds"


async def test_methods(server):
    response = await request(server, "POST", "/demo")
    assert response.status_code == 405 and response.headers["allow"] == "GET"
    response = await request(server, "GET", "/v1/demo/session")
    assert response.status_code == 405 and response.headers["allow"] == "POST"


async def test_without_a_demo_token_there_is_no_demo(nursery):
    server = EmbeddedServer.with_generated_key()
    await nursery.start(server.serve)
    assert (await request(server, "GET", "/demo")).status_code == 404
    response = await request(server, "POST", "/v1/demo/session", headers={"X-Rtfleet-Demo-Token": ""})
    assert response.status_code == 404


def test_the_page_script_exposes_progress_for_tests():
    html = PAGE.decode()
    for name in ("window.rtfleetDemo", "waitFor", "audioFrames", "sendText", "getUserMedia",
                 "createDataChannel", "/v1/realtime/calls", "/v1/demo/session", "X-Rtfleet-Demo-Token"):
        assert name in html, name
