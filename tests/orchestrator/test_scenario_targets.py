"""Scenario targets beyond OpenAI's: ``azure:`` and ``{url, headers}`` (issue 17 item 5).

Loading: bad input names file, line and field; a file round-trips. Running: against the
embedded server's Azure paths (``api-key`` from the named variable, a token from a command
that is run again after a 401) and a generic target whose headers the server requires; no
key, token or header value reaches results.json.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import trio

from actors.credentials import Secret
from actors.endpoint import AzureEndpoint, OpenAIEndpoint
from orchestrator.keys import KeyManager, KeyMintError
from orchestrator.fleet import open_fleet
from orchestrator.scenario import ScenarioError, load_scenario_text
from orchestrator.scenario.loader import dump_scenario_text
from orchestrator.scenario.model import AzureTarget
from orchestrator.scenario.runner import RunError, RunInputError, run_scenario
from orchestrator.token_source import TokenCommand, TokenCommandError, jwt_expiry
from standin import EmbeddedServer

KEY = "azure-scenario-key-0123456789"
TOKEN = "tenant-token-abcdef0123456789"

REST = """\
session: {output_modalities: [text], turn_detection: null}
populations: [{name: p, script: s, sessions: 2}]
scripts: {s: [{say: hello}]}
thresholds: [errors == 0, sessions.failed == 0]
"""


def scenario(target: str) -> str:
    return f"name: t\ntarget:\n{textwrap.indent(textwrap.dedent(target).rstrip(), '  ')}\n{REST}"


# -- loading -------------------------------------------------------------------------------

ERRORS = {
    "missing deployment": ("azure: {endpoint: https://r.openai.azure.com, api_version: v1}",
                           3, "target.azure", "missing required key 'deployment'"),
    "bad endpoint": ("azure: {endpoint: r.openai.azure.com, deployment: d, api_version: v}",
                     3, "target.azure.endpoint", "expected an https:// URL"),
    "bad port": ("azure: {endpoint: 'https://r:99999', deployment: d, api_version: v}",
                 3, "target.azure.endpoint", "not a valid URL"),
    "unknown auth kind": ("azure:\n  endpoint: https://r\n  deployment: d\n  api_version: v\n"
                          "  auth: {type: kerberos}", 7, "target.azure.auth.type",
                          "unknown auth type 'kerberos'; expected api_key or token"),
    "unknown auth short form": ("azure: {endpoint: https://r, deployment: d, api_version: v, auth: tokn}",
                                3, "target.azure.auth", "did you mean 'token'?"),
    "command with api_key": ("azure: {endpoint: https://r, deployment: d, api_version: v,"
                             " auth: {type: api_key, command: x}}", 3, "target.azure.auth.command",
                             "use it with type: token"),
    "unknown azure key": ("azure: {endpoint: https://r, deployment: d, api_version: v, deploy: x}",
                          3, "target.azure.deploy", "unknown key 'deploy'"),
    "url beside azure": ("url: wss://x\nazure: {endpoint: https://r, deployment: d, api_version: v}",
                         3, "target.url", "does not go beside azure:"),
    "bad header reference": ('{url: "wss://x", headers: {X-Token: "${MY TOKEN}"}}', 3,
                             "target.headers.X-Token", "${NAME}"),
    "bad header name": ('{url: "wss://x", headers: {"X Token": v}}', 3,
                        "target.headers['X Token']", "not a valid header name"),
}


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_bad_targets_name_file_line_and_field(case):
    target, line, field, message = ERRORS[case]
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(scenario(target), "scenarios/az.yaml")
    error = info.value
    assert (error.file, error.line, error.field) == ("scenarios/az.yaml", line, field), str(error)
    assert message in error.message
    assert str(error).startswith(f"scenarios/az.yaml:{line}:")


def test_an_azure_target_loads_with_defaults_and_round_trips():
    text = scenario("azure:\n  endpoint: https://r.openai.azure.com\n  deployment: rt\n"
                    "  api_version: 2025-08-28\n")  # unquoted: YAML reads a date
    loaded = load_scenario_text(text, "az.yaml")
    target = loaded.target
    assert isinstance(target, AzureTarget)
    assert target.api_version == "2025-08-28"
    assert (target.auth.type, target.auth.variable, target.key_mode) == ("api_key", "AZURE_OPENAI_API_KEY", "direct")
    assert load_scenario_text(dump_scenario_text(loaded), "az.yaml") == loaded
    token = load_scenario_text(scenario("azure: {endpoint: https://r, deployment: d, api_version: v,"
                                        " auth: token, headers: {X-A: '${A}'}}"), "az.yaml")
    assert token.target.auth.variable == "AZURE_OPENAI_AD_TOKEN"
    assert load_scenario_text(dump_scenario_text(token), "az.yaml") == token


# -- running -------------------------------------------------------------------------------


@pytest.fixture
async def server(nursery):
    server = EmbeddedServer(api_keys={KEY})
    await nursery.start(server.serve)
    return server


async def test_a_scenario_runs_against_the_azure_paths(server, monkeypatch):
    monkeypatch.setenv("RT_AZURE_KEY", KEY)
    text = scenario(f"azure:\n  endpoint: {server.base_url}\n  deployment: gpt-realtime\n"
                    f"  api_version: '2025-08-28'\n  auth: {{type: api_key, env: RT_AZURE_KEY}}\n")
    with trio.fail_after(30):
        result = await run_scenario(load_scenario_text(text, "az.yaml"), file="az.yaml")
    assert result.passed, result.results["thresholds"]
    assert result.results["target"] == f"azure {server.base_url} deployment gpt-realtime"
    assert KEY not in json.dumps(result.results)
    assert {r.auth_kind for r in server.connections} == {"api_key"}
    assert {r.model for r in server.connections} == {"gpt-realtime"}  # the deployment
    assert server.stats.client_secrets_minted == 0  # key_mode direct


async def test_missing_credentials_and_webrtc_without_secrets_are_refused(server, monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    text = scenario(f"azure: {{endpoint: '{server.base_url}', deployment: d, api_version: v}}\n")
    with pytest.raises(RunError, match="set AZURE_OPENAI_API_KEY for target azure"):
        await run_scenario(load_scenario_text(text, "az.yaml"))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    webrtc = load_scenario_text(text.replace("script: s,", "script: s, transport: webrtc,"), "az.yaml")
    with pytest.raises(RunInputError, match="key_mode: ephemeral"):
        await run_scenario(webrtc)


async def test_a_generic_target_sends_its_headers(nursery, monkeypatch):
    server = EmbeddedServer(api_keys={KEY}, required_headers={"X-Tenant": "acme", "X-Token": TOKEN})
    await nursery.start(server.serve)
    monkeypatch.setenv("RT_GENERIC_KEY", KEY)
    target = (f'{{url: "{server.base_url}", api_key_env: RT_GENERIC_KEY,'
              f' headers: {{X-Tenant: acme, X-Token: "${{MY_TOKEN}}"}}}}\n')
    loaded = load_scenario_text(scenario(target), "generic.yaml")
    with pytest.raises(RunError, match="environment variable MY_TOKEN is not set"):
        await run_scenario(loaded)
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    with trio.fail_after(30):
        result = await run_scenario(loaded, file="generic.yaml")
    assert result.passed, result.results["thresholds"]
    assert server.stats.client_secrets_minted >= 1  # the mint carried the headers too
    text = json.dumps(result.results)
    assert TOKEN not in text and KEY not in text
    # the header is what let it in: without it the server refuses (the mint, here)
    endpoint = OpenAIEndpoint(server.base_url, headers={"X-Tenant": "acme", "X-Token": "bogus-value-42"})
    keys = KeyManager(server.base_url, Secret(KEY), endpoint=endpoint)
    with pytest.raises(KeyMintError) as info:
        await keys.credential()
    assert info.value.status == 401 and "X-Token" in str(info.value)
    assert KEY not in str(info.value) and "bogus-value-42" not in str(info.value)


# -- tokens from a command -----------------------------------------------------------------

COUNTER = """\
import pathlib, sys
path = pathlib.Path(sys.argv[1])
n = int(path.read_text()) + 1 if path.exists() else 1
path.write_text(str(n))
print(f"entra-token-{n}")
"""


async def test_a_token_command_is_run_again_after_a_401(nursery, tmp_path):
    script = tmp_path / "token.py"
    script.write_text(COUNTER)
    server = EmbeddedServer(api_keys={"entra-token-2"})  # the first token is refused
    url = await nursery.start(server.serve)
    source = TokenCommand([sys.executable, str(script), str(tmp_path / "n")])
    endpoint = AzureEndpoint(url, deployment="gpt-realtime", api_version="2025-08-28")
    async with open_fleet(endpoint, key_mode="direct", token_source=source) as fleet:
        sid = await fleet.add_session(config={"output_modalities": ["text"], "turn_detection": None})
        with trio.fail_after(20):
            await fleet.wait_connected(sid)
            assert await fleet.ask(sid, "token") == "You said: token"
        await fleet.remove_session(sid)
    assert source.runs == 2
    assert [r.auth_kind for r in server.connections] == [None, "api_key"]
    assert "entra-token" not in repr(source)


async def test_token_expiry_comes_from_the_jwt_and_failures_keep_the_token_out(tmp_path):
    import base64

    claims = base64.urlsafe_b64encode(json.dumps({"exp": 2_000_000_000}).encode()).decode().rstrip("=")
    assert jwt_expiry(f"h.{claims}.s") == 2_000_000_000
    assert jwt_expiry("not-a-jwt") is None
    now = [1_999_999_000.0]
    jwt = tmp_path / "jwt.py"
    jwt.write_text(f"print('h.{claims}.s')")
    source = TokenCommand([sys.executable, str(jwt)], refresh_margin=300, clock=lambda: now[0])
    first = await source.token()
    assert first.kind == "token" and first.expires_at == 2_000_000_000
    assert await source.token() is first and source.runs == 1
    now[0] = 2_000_000_000 - 200  # inside the refresh margin
    await source.token()
    assert source.runs == 2
    failing = tmp_path / "fail.py"
    failing.write_text("import sys; print('secret-stdout-token'); print('login needed', file=sys.stderr); sys.exit(3)")
    with pytest.raises(TokenCommandError) as info:
        await TokenCommand([sys.executable, str(failing)]).token()
    assert "exited 3: login needed" in str(info.value)
    assert "secret-stdout-token" not in str(info.value)
