"""``rtfleet serve --faults FILE`` and ``POST /_rtfleet/faults``: chaos for a user's own app.

A real client (an rtfleet fleet, which reconnects by itself) talks to a ``rtfleet serve``
subprocess over loopback; the server's faults happen to it (its connection drops, the server
dies and comes back, keys are refused) and it recovers. Waits are on the client's own state
events and the server's stdout lines ("fault: …"), never sleeps.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from actors.events import ConnectionState
from rtfleet import Backoff, open_fleet
from tests.orchestrator.serve_process import rtfleet_serve

FAST = Backoff(base=0.05, cap=0.3)


async def _wait_connections(fleet, sid: str, count: int) -> None:
    """Until the session has connected ``count`` times (first connection included)."""
    async with fleet.subscribe(sessions=[sid], kinds=["state"]) as events:
        while fleet.status(sid).connects < count or fleet.status(sid).state is not ConnectionState.CONNECTED:
            await events.receive()


async def test_a_fault_file_drops_the_clients_connection_and_it_reconnects(tmp_path: Path) -> None:
    plan = tmp_path / "chaos.yaml"
    plan.write_text("seed: 3\nserver: {latency: 10ms}\n"
                    "faults:\n  - {at: 0.4s, action: drop_connections, percent: 100}\n"
                    "repeat: 0.8s\n")
    with trio.fail_after(60):
        async with rtfleet_serve("--faults", str(plan)) as serve:
            assert f"timeline from {plan}" in serve.banner
            async with open_fleet(serve.url, api_key=serve.key, key_mode="direct", backoff=FAST,
                                  config={"output_modalities": ["text"]}) as fleet:
                sid = await fleet.add_session()
                await fleet.wait_connected(sid)
                await serve.wait_line(lambda line: "fault: drop_connections" in line and "dropped 1" in line)
                await _wait_connections(fleet, sid, 2)  # dropped, reconnected
                status = fleet.status(sid)
                assert status.reconnects >= 1
                assert await fleet.ask(sid, "still there?") == "You said: still there?"
            async with httpx.AsyncClient(base_url=serve.url) as http:
                state = await http.get("/_rtfleet/faults", headers={"Authorization": f"Bearer {serve.key}"})
            assert state.json()["plan"]["latency_ms"] == 10  # the file's all-run-long fault
            assert state.json()["injected"]["delayed_events"] > 0
            assert state.json()["injected"]["drops"]["now"] >= 1


async def test_the_control_path_injects_faults_now_with_the_api_key_only(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with rtfleet_serve() as serve, httpx.AsyncClient(base_url=serve.url, timeout=10) as http:
            auth = {"Authorization": f"Bearer {serve.key}"}
            # refused without the standard key (a client secret is not enough) or with a bad body
            assert (await http.post("/_rtfleet/faults", json={"action": "expire_keys"})).status_code == 401
            minted = (await http.post("/v1/realtime/client_secrets", json={}, headers=auth)).json()["value"]
            secret = {"Authorization": f"Bearer {minted}"}
            assert (await http.post("/_rtfleet/faults", json={"action": "expire_keys"},
                                    headers=secret)).status_code == 401
            bad = await http.post("/_rtfleet/faults", json={"action": "drop_connections", "percent": 200},
                                  headers=auth)
            assert bad.status_code == 400 and "percent" in bad.json()["error"]["message"]
            unknown = await http.post("/_rtfleet/faults", json={"action": "drop_conections"}, headers=auth)
            assert "did you mean 'drop_connections'" in unknown.json()["error"]["message"]
            broken = await http.post("/_rtfleet/faults", content=b"{", headers=auth)
            assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"

            async with open_fleet(serve.url, api_key=serve.key, key_mode="direct", backoff=FAST,
                                  config={"output_modalities": ["text"]}) as fleet:
                sid = await fleet.add_session()
                await fleet.wait_connected(sid)
                # drop now: the client's connection dies (no close frame) and it reconnects
                dropped = await http.post("/_rtfleet/faults", headers=auth,
                                          json={"action": "drop_connections", "percent": 100})
                assert dropped.status_code == 200
                assert dropped.json() == {"applied": "drop_connections(percent=100)", "dropped": 1}
                await _wait_connections(fleet, sid, 2)
                # the server dies and comes back on the same port: the client reconnects again
                killed = await http.post("/_rtfleet/faults", headers=auth,
                                         json={"kill_server": {"restart_after": "0.3s"}})
                assert killed.status_code == 200
                await _wait_connections(fleet, sid, 3)
                assert await fleet.ask(sid, "back?") == "You said: back?"

            # keys refused for a while: the service refuses them, the control path still works
            assert (await http.post("/_rtfleet/faults", headers=auth,
                                    json={"action": "reject_keys", "for": "60s"})).status_code == 200
            refused = await http.post("/v1/realtime/client_secrets", json={}, headers=auth)
            assert refused.status_code == 401
            state = await http.get("/_rtfleet/faults", headers=auth)
            assert state.status_code == 200 and state.json()["plan"]["reject_keys"] is True
            assert state.json()["injected"]["drops"] == {"now": 1}
        assert any("fault: kill_server(restart_after=0.3)" in line for line in serve.lines)


@pytest.mark.parametrize("text, message", [
    ("faults:\n  - {at: 1s, action: drop_conections}\n",
     ":2:22: faults[0].action: unknown action 'drop_conections'; did you mean 'drop_connections'?"),
    ("server:\n  latncy: 20ms\n", ":2:3: server.latncy: unknown key 'latncy'"),
    ("faults:\n  - {at: 1s, action: add_latency, ms: -5}\n", ":2:39: faults[0].ms: must be >= 0"),
    ("faults: [{at: 9s, action: expire_keys}]\nrepeat: 5s\n", ":2:9: repeat: repeat (5s) must be later"),
    ("- just a list\n", ":1:1: a fault file is a mapping"),
    ("faults: [\n", "YAML syntax error"),
])
def test_a_bad_fault_file_exits_2_naming_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "chaos.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "serve", "--port", "0", "--faults", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {path}") and message in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_a_missing_fault_file_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "serve", "--port", "0",
                           "--faults", str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "cannot read the fault file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_example_fault_file_loads():
    from orchestrator.scenario.fault_file import load_fault_file

    example = load_fault_file(Path(__file__).parents[2] / "examples" / "serve-faults.yaml")
    assert example.repeat == 60 and len(example.faults) == 5 and example.server.latency == 0.02


async def test_overlapping_kills_restart_the_server_once(tmp_path: Path) -> None:
    """The second kill's restart comes first; the first kill's later restart finds the server
    running and leaves it be (a second bind would fail)."""
    plan = tmp_path / "kills.yaml"
    plan.write_text("faults:\n"
                    "  - {at: 0.2s, action: kill_server, restart_after: 1s}\n"
                    "  - {at: 0.4s, action: kill_server, restart_after: 0.2s}\n"
                    "  - {at: 1.6s, action: expire_keys}\n")
    with trio.fail_after(60):
        async with rtfleet_serve("--faults", str(plan)) as serve:
            await serve.wait_line(lambda line: "fault: expire_keys" in line)
            async with httpx.AsyncClient(base_url=serve.url) as http:
                minted = await http.post("/v1/realtime/client_secrets", json={},
                                         headers={"Authorization": f"Bearer {serve.key}"})
            assert minted.status_code == 200
    assert sum("the server is back" in line for line in serve.lines) == 1
    assert not any("could not restart" in line for line in serve.lines)
