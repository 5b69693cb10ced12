"""Azure OpenAI targets, with the official SDK as the oracle (issue 17 item 5).

The embedded server serves TLS on loopback (a throwaway CA, trusted through ``SSL_CERT_FILE``)
behind a recorder that keeps every request's path, query and headers. The SDK's
``AsyncAzureOpenAI(azure_endpoint=https://127.0.0.1:…, api_version=…, azure_deployment=…)``
completes a turn over ``realtime.connect()``; rtfleet's :class:`AzureEndpoint` fleet completes
one too; the two upgrade requests have the same path, query and auth header. The same for the
client-secret and WebRTC-call HTTP paths (rtfleet's ``KeyManager`` mint vs the SDK's
``client_secrets.create``; ``AzureEndpoint.calls_url`` vs the SDK's ``calls.create``).
"""

from __future__ import annotations

import asyncio
import ssl
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
import trio
import trustme

from actors.credentials import Secret
from actors.endpoint import AzureEndpoint
from orchestrator.fleet import open_fleet
from orchestrator.keys import KeyManager
from standin import EmbeddedServer
from standin.app import RealtimeApp
from standin.front.lean import serve_front

KEY = "azure-key-0123456789abcdef"
TOKEN = "entra.eyJleHAiOjQxMDI0NDQ4MDB9.signature"
VERSION = "2025-08-28"
DEPLOYMENT = "gpt-realtime"
SDK_ONLY = {"user-agent", "x-stainless-lang", "x-stainless-package-version", "x-stainless-os",
            "x-stainless-arch", "x-stainless-runtime", "x-stainless-runtime-version",
            "x-stainless-async", "x-stainless-retry-count", "x-stainless-read-timeout",
            "x-stainless-timeout", "accept", "accept-encoding", "content-type", "content-length",
            "connection", "host", "upgrade", "sec-websocket-key", "sec-websocket-version",
            "sec-websocket-extensions", "idempotency-key"}


class Recorder:
    """An ASGI wrapper keeping what each request asked for, as it arrived."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            self.requests.append({
                "type": scope["type"], "path": scope["path"],
                "query": scope.get("query_string", b"").decode(),
                "headers": {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])},
            })
        await self.app(scope, receive, send)

    def of(self, kind: str, path_end: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["type"] == kind and r["path"].endswith(path_end)]


def run_asyncio(main: Any) -> Any:
    """Run a coroutine on a plain asyncio loop (in a worker thread): once aiortc's trio-asyncio
    bridge is imported its loop policy would otherwise give ``asyncio.run`` its own loop."""
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(main)


def auth_of(request: dict[str, Any]) -> dict[str, str]:
    """The request's headers beyond the transport's and the SDK's own telemetry."""
    return {k: v for k, v in request["headers"].items() if k not in SDK_ONLY}


@pytest.fixture
async def azure(nursery, tmp_path, monkeypatch):
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # rtfleet, websockets and httpx trust it
    server = EmbeddedServer(api_keys={KEY, TOKEN}, webrtc=False)
    recorder = Recorder(RealtimeApp(server))
    url = await nursery.start(partial(serve_front, recorder, "127.0.0.1", 0, ssl_context=context))
    return server, recorder, url, str(bundle)


def sdk_client(url: str, bundle: str, **auth: str) -> openai.AsyncAzureOpenAI:
    import httpx2

    return openai.AsyncAzureOpenAI(azure_endpoint=url, api_version=VERSION,
                                   azure_deployment=DEPLOYMENT, max_retries=0,
                                   http_client=httpx2.AsyncClient(verify=ssl.create_default_context(cafile=bundle)),
                                   **auth)


def sdk_turn(url: str, bundle: str, auth: dict[str, str]) -> str:
    """A text turn over the SDK's own ``realtime.connect()`` (asyncio, in a thread)."""

    async def main() -> str:
        client = sdk_client(url, bundle, **auth)
        try:
            async with client.realtime.connect(model=DEPLOYMENT) as conn:
                await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
                await conn.conversation.item.create(item={
                    "type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": "hello azure"}]})
                await conn.response.create()
                text = ""
                async for event in conn:
                    if event.type == "response.output_text.delta":
                        text += event.delta
                    if event.type == "response.done":
                        return text
        finally:
            await client.close()
        raise AssertionError("no response.done")

    return run_asyncio(main())


async def rtfleet_turn(url: str, credential: Secret) -> str:
    endpoint = AzureEndpoint(url, deployment=DEPLOYMENT, api_version=VERSION)
    async with open_fleet(endpoint, api_key=credential, key_mode="direct") as fleet:
        sid = await fleet.add_session(config={"output_modalities": ["text"], "turn_detection": None})
        with trio.fail_after(15):
            await fleet.wait_connected(sid)
            answer = await fleet.ask(sid, "hello azure")
        await fleet.remove_session(sid)
    return answer


@pytest.mark.parametrize("auth,credential", [
    ({"api_key": KEY}, Secret(KEY, kind="api_key")),
    ({"azure_ad_token": TOKEN}, Secret(TOKEN, kind="token")),
], ids=["api-key", "entra-token"])
async def test_sdk_and_rtfleet_send_the_same_websocket_request(azure, auth, credential):
    server, recorder, url, bundle = azure
    with trio.fail_after(30):
        sdk_text = await trio.to_thread.run_sync(sdk_turn, url, bundle, auth)
    assert sdk_text == "You said: hello azure"
    sdk = recorder.of("websocket", "/realtime")[-1]
    assert await rtfleet_turn(url, credential) == "You said: hello azure"
    ours = recorder.of("websocket", "/realtime")[-1]
    assert ours is not sdk
    assert sdk["path"] == ours["path"] == "/openai/realtime"
    assert sdk["query"] == ours["query"] == f"api-version={VERSION}&deployment={DEPLOYMENT}"
    assert auth_of(sdk) == auth_of(ours), (auth_of(sdk), auth_of(ours))
    expected = {"api-key": KEY} if "api_key" in auth else {"authorization": f"Bearer {TOKEN}"}
    assert auth_of(ours) == expected
    # what the URL builder says is what went on the wire
    built = urlsplit(AzureEndpoint(url, deployment=DEPLOYMENT, api_version=VERSION).websocket_url(model=None))
    assert (built.scheme, built.path, built.query) == ("wss", sdk["path"], sdk["query"])
    assert [r.auth_kind for r in server.connections[-2:]] == ["api_key", "api_key"]


async def test_client_secrets_and_calls_paths_match_the_sdk(azure):
    _server, recorder, url, bundle = azure

    async def sdk_requests() -> None:
        client = sdk_client(url, bundle, api_key=KEY)
        try:
            minted = await client.realtime.client_secrets.create(
                session={"type": "realtime", "model": DEPLOYMENT})
            assert minted.value.startswith("ek_")
            # only the path and query matter here: a refused key answers at once (401)
            with pytest.raises(openai.AuthenticationError):
                await client.realtime.calls.create(sdp="v=0\r\n", extra_headers={"api-key": "refused"})
        finally:
            await client.close()

    await trio.to_thread.run_sync(run_asyncio, sdk_requests())
    sdk_mint = recorder.of("http", "/client_secrets")[-1]
    sdk_call = recorder.of("http", "/calls")[-1]

    endpoint = AzureEndpoint(url, deployment=DEPLOYMENT, api_version=VERSION)
    keys = KeyManager(url, Secret(KEY, kind="api_key"), mode="ephemeral", endpoint=endpoint,
                      session={"type": "realtime", "model": DEPLOYMENT})
    secret = await keys.credential()
    assert secret.kind == "client_secret" and secret.reveal().startswith("ek_")
    ours = recorder.of("http", "/client_secrets")[-1]
    assert ours is not sdk_mint
    assert (sdk_mint["path"], sdk_mint["query"]) == (ours["path"], ours["query"]) == (
        "/openai/realtime/client_secrets", f"api-version={VERSION}")
    assert sdk_mint["headers"]["api-key"] == ours["headers"]["api-key"] == KEY
    assert "authorization" not in ours["headers"]
    calls = urlsplit(endpoint.calls_url())
    assert (sdk_call["path"], sdk_call["query"]) == (calls.path, calls.query) == (
        "/openai/realtime/calls", f"api-version={VERSION}")


async def test_an_ephemeral_azure_fleet_connects_with_a_client_secret(azure):
    server, recorder, url, _bundle = azure
    endpoint = AzureEndpoint(url, deployment=DEPLOYMENT, api_version=VERSION)
    async with open_fleet(endpoint, api_key=Secret(KEY, kind="api_key"), key_mode="ephemeral") as fleet:
        sid = await fleet.add_session(config={"output_modalities": ["text"], "turn_detection": None})
        with trio.fail_after(15):
            await fleet.wait_connected(sid)
            assert await fleet.ask(sid, "ephemeral") == "You said: ephemeral"
        await fleet.remove_session(sid)
    upgrade = recorder.of("websocket", "/realtime")[-1]
    assert upgrade["path"] == "/openai/realtime"
    assert upgrade["headers"]["authorization"].startswith("Bearer ek_")
    assert "api-key" not in upgrade["headers"]
    assert server.connections[-1].auth_kind == "client_secret"


SCAN_TOKEN = "entra-RECOGNISABLE-token-0123456789"
SCAN_HEADER = "hdr-RECOGNISABLE-value-9876543210"


async def test_an_azure_run_leaks_no_token_or_header_anywhere(nursery, tmp_path):
    """A CLI run with a token command and a ``${VAR}`` header, dropped once on purpose: the
    token and the header value appear in no output, log, trace, results or report."""
    import os
    import re
    import sys

    server = EmbeddedServer(api_keys={SCAN_TOKEN}, required_headers={"X-Scan": SCAN_HEADER})
    url = await nursery.start(server.serve)
    command = tmp_path / "token.py"
    command.write_text(f"print({SCAN_TOKEN!r})")
    scenario = tmp_path / "azure.yaml"
    scenario.write_text(f"""
name: azure-secret-scan
target:
  azure:
    endpoint: {url}
    deployment: gpt-realtime
    api_version: "2025-08-28"
    auth: {{type: token, command: "{sys.executable} {command}"}}
    key_mode: ephemeral
    headers: {{X-Scan: "${{SCAN_HEADER}}"}}
session: {{output_modalities: [text], turn_detection: null}}
populations: [{{name: p, script: s, sessions: 3}}]
scripts: {{s: [{{say: hello}}, {{pause: 1s}}, {{say: again}}]}}
faults: [{{at: 0.5s, action: drop_connections, percent: 100}}]
thresholds: [errors == 0]
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AZURE_"))}
    env.update(SCAN_HEADER=SCAN_HEADER, OTEL_TRACES_EXPORTER="console", PYTHONUNBUFFERED="1")
    with trio.fail_after(90):
        done = await trio.run_process(
            [sys.executable, "-m", "orchestrator", "run", str(scenario), "--out", str(tmp_path / "out"),
             "--trace-file", str(tmp_path / "spans.jsonl"), "--json"],
            env=env, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    blobs = {"stdout": done.stdout.decode(), "stderr": done.stderr.decode(),
             "spans": (tmp_path / "spans.jsonl").read_text()}
    for path in (tmp_path / "out").iterdir():
        blobs[path.name] = path.read_text()
    assert "azure-secret-scan" in blobs["results.json"] and "report.html" in blobs
    assert '"target": "azure http://127.0.0.1' in blobs["results.json"]
    for name, text in blobs.items():
        for secret in (SCAN_TOKEN, SCAN_HEADER, SCAN_TOKEN[7:20], SCAN_HEADER[4:18]):
            assert secret not in text, f"{secret!r} leaked into {name}"
        assert not re.search(r"ek_[A-Za-z0-9_\-]{8,}", text), f"a client secret leaked into {name}"
    assert server.stats.client_secrets_minted >= 1
    assert any(r.auth_kind == "client_secret" for r in server.connections)
