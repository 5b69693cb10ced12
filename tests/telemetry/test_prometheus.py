"""Live metrics for Prometheus (``--metrics-port``, ``open_fleet(metrics_port=)``).

The main test starts a real Prometheus (Debian's ``prometheus``, installed by
``scripts/test.sh``) on loopback, scraping a live ``rtfleet run`` in a subprocess every 200 ms,
then asks Prometheus's query API for the series: the turn count equals results.json's, and
``histogram_quantile`` of the turn latency agrees with results.json's quantile within one
histogram bucket. Without ``prometheus`` it skips, unless ``RTFLEET_REQUIRE_PROMETHEUS`` is set
(CI sets it), when it fails.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from orchestrator.cli import main
from orchestrator.fleet import open_fleet
from orchestrator.metrics_endpoint import BUCKETS, MetricsEndpoint
from standin import EmbeddedServer, ModelConfig

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """\
name: prom
session:
  output_modalities: [audio]
  turn_detection: null
populations:
  - {name: short, script: short, sessions: 6}
  - {name: long, script: long, sessions: 6}
scripts:
  short:
    - repeat: 4
      steps:
        - say: hi
  long:
    - repeat: 4
      steps:
        - say: tell me a much longer story about the sea
thresholds:
  - errors == 0
"""
BUCKET_RATIO = BUCKETS[1] / BUCKETS[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("RTFLEET_REQUIRE_PROMETHEUS"):
            pytest.fail("prometheus is not installed, and RTFLEET_REQUIRE_PROMETHEUS is set")
        pytest.skip("prometheus is not installed (apt-get install -y prometheus); "
                    "set RTFLEET_REQUIRE_PROMETHEUS=1 to make this a failure")
    return path


def last(series: str) -> str:
    return f"last_over_time({series}[5m])"


async def query(client: httpx.AsyncClient, base: str, promql: str) -> list[dict]:
    response = await client.get(f"{base}/api/v1/query", params={"query": promql})
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


async def wait_for(client: httpx.AsyncClient, base: str, promql: str, want: float, seconds: float) -> float:
    """Poll Prometheus (another process: nothing to wait on but its answers) until ``promql``
    is ``want``; returns the last value seen."""
    value = math.nan
    with trio.move_on_after(seconds):
        while True:
            result = await query(client, base, promql)
            if result:
                value = float(result[0]["value"][1])
                if value == want:
                    return value
            await trio.sleep(0.2)
    return value


async def test_a_real_prometheus_scrapes_a_live_run_and_agrees_with_its_results(tmp_path):
    binary = prometheus_binary()
    metrics_port, prom_port = free_port(), free_port()
    (tmp_path / "prom.yml").write_text(
        "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
        "scrape_configs:\n"
        f"  - job_name: rtfleet\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n")
    (tmp_path / "s.yaml").write_text(SCENARIO)
    base = f"http://127.0.0.1:{prom_port}"
    async with trio.open_nursery() as nursery:
        log = open(tmp_path / "prometheus.log", "wb")
        prom = await nursery.start(partial(
            trio.run_process,
            [binary, f"--config.file={tmp_path / 'prom.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            check=False, stdout=subprocess.DEVNULL, stderr=log))
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                with trio.fail_after(30):  # Prometheus up
                    while True:
                        try:
                            if (await client.get(f"{base}/-/ready")).status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        await trio.sleep(0.1)
                env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
                with trio.fail_after(90):
                    run = await trio.run_process(
                        [sys.executable, "-m", "orchestrator", "run", str(tmp_path / "s.yaml"), "--quiet",
                         "--out", str(tmp_path / "out"), "--metrics-port", str(metrics_port),
                         "--metrics-linger", "20"],
                        cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, check=False, capture_stderr=True)
                assert run.returncode == 0, run.stderr.decode()[-2000:]
                results = json.loads((tmp_path / "out" / "results.json").read_text())
                turns = results["summary"]["counters"]["turns.completed"]
                assert turns == 48
                # the lingering endpoint answered one scrape after the run: the final figures.
                # The target is down since, so its series are stale: read their last samples
                seen = await wait_for(client, base, f"sum({last('rtfleet_turns_completed_total')})",
                                      turns, 10)
                assert seen == turns
                count = await wait_for(client, base, f"sum({last('rtfleet_turn_duration_seconds_count')})",
                                       turns, 5)
                assert count == turns
                by_population = await query(client, base, "sum by (rtfleet_population) "
                                                          f"({last('rtfleet_turns_completed_total')})")
                assert {r["metric"].get("rtfleet_population"): float(r["value"][1])
                        for r in by_population if r["metric"].get("rtfleet_population")} == {
                    "short": 24.0, "long": 24.0}
                exact = results["summary"]["histograms"]["turn.duration"]
                for q, key in ((0.5, "p50"), (0.95, "p95")):
                    [answer] = await query(client, base, f"histogram_quantile({q}, sum by (le) "
                                                         f"({last('rtfleet_turn_duration_seconds_bucket')}))")
                    estimate = float(answer["value"][1])
                    # linear interpolation inside one bucket: within a bucket's ratio of the truth
                    assert exact[key] / BUCKET_RATIO <= estimate <= exact[key] * BUCKET_RATIO, (
                        q, estimate, exact[key])
                sessions = await query(client, base, last("rtfleet_sessions_started_total"))
                assert sessions
                assert all("sk-" not in json.dumps(r["metric"]) for r in sessions)
        finally:
            prom.terminate()
            log.close()


async def test_open_fleet_metrics_port_serves_the_fleet_sessions_by_state(nursery):
    server = EmbeddedServer.with_generated_key(model_config=ModelConfig(pace=0.0))
    async with open_fleet(server=server, api_key=server.api_key, metrics_port=0) as fleet:
        sids = [await fleet.add_session() for _ in range(3)]
        for sid in sids:
            await fleet.wait_connected(sid)
        async with httpx.AsyncClient() as client:
            text = (await client.get(fleet.metrics_endpoint.url)).text
        assert ('rtfleet_fleet_sessions{otel_scope_name="rtfleet",otel_scope_schema_url="",'
                'otel_scope_version="",rtfleet_session_state="connected",'
                'rtfleet_transport="websocket"} 3.0') in text
        assert "rtfleet_fleet_connects_total" in text and server.api_key not in text
        fleet.links[sids[0]].abort_connection()
        await fleet.wait_state(sids[0], "reconnecting")
        await fleet.wait_connected(sids[0])
        await fleet.remove_session(sids[0], forget=True)  # its counts stay in the totals
        async with httpx.AsyncClient() as client:
            text = (await client.get(fleet.metrics_endpoint.url)).text
        [line] = [ln for ln in text.splitlines() if ln.startswith("rtfleet_fleet_reconnects_total")]
        assert line.endswith(" 1.0")
        [line] = [ln for ln in text.splitlines() if ln.startswith("rtfleet_fleet_connects_total")]
        assert line.endswith(" 4.0")


async def test_a_scrape_from_another_address_is_refused_on_a_loopback_binding():
    """A non-loopback peer cannot be produced on this loopback-only box: the one stand-in here
    is the peer address of an in-memory stream; the HTTP exchange over it is real."""

    from trio.testing import memory_stream_pair

    endpoint = MetricsEndpoint(0)
    client, server_side = memory_stream_pair()

    class Sock:
        @staticmethod
        def getpeername():
            return ("10.1.2.3", 5555)

    server_side.socket = Sock()
    await client.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    async with trio.open_nursery() as n:
        n.start_soon(endpoint._one_request, server_side)
        reply = b""
        while b"\r\n\r\n" not in reply or b"--metrics-host" not in reply:
            reply += await client.receive_some(4096)
    assert reply.startswith(b"HTTP/1.1 403") and endpoint.refused == 1 and endpoint.scrapes == 0


def test_metrics_port_in_use_is_a_usage_error(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["run", str(ROOT / "scenarios" / "smoke.yaml"), "--quiet", "--metrics-port", str(port)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"--metrics-port: cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
    assert main(["run", str(ROOT / "scenarios" / "smoke.yaml"), "--metrics-port", "70000"]) == 2


async def test_with_workers_one_scrape_of_the_parent_sees_every_worker(tmp_path):
    """``--workers 2``: each worker serves its own port, the parent's endpoint fetches both and
    labels their samples ``rtfleet_worker``; after the run the parent's scrape holds both
    workers' final figures, which add up to the merged results."""
    port = free_port()
    (tmp_path / "s.yaml").write_text(SCENARIO)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    finals: dict[str, float] = {}

    def turns_by_worker(text: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("rtfleet_turns_completed_total{"):
                worker = line.split('rtfleet_worker="', 1)[1].split('"', 1)[0]
                found[worker] = found.get(worker, 0.0) + float(line.rsplit(" ", 1)[1])
        return found

    async with trio.open_nursery() as nursery:
        run = await nursery.start(partial(
            trio.run_process,
            [sys.executable, "-m", "orchestrator", "run", str(tmp_path / "s.yaml"), "--quiet", "--workers", "2",
             "--out", str(tmp_path / "out"), "--metrics-port", str(port), "--metrics-linger", "20"],
            cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, check=False, stdout=subprocess.DEVNULL))
        async with httpx.AsyncClient(timeout=5) as client:
            with trio.fail_after(90):
                while run.poll() is None:  # scrape as Prometheus would, until the run has ended
                    try:
                        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                    except httpx.TransportError:
                        await trio.sleep(0.1)
                        continue
                    finals.update(turns_by_worker(text))
                    await trio.sleep(0.2)
    assert run.returncode == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(finals) == {"1", "2"}
    assert sum(finals.values()) == results["summary"]["counters"]["turns.completed"] == 48
