"""The Grafana dashboard (``deploy/grafana/rtfleet.json``) asks only for metrics rtfleet exports.

The dashboard is checked for structure (unique panel ids and titles, grid positions that do not
overlap, every panel and query on the ``${datasource}`` variable) and for coverage (every run
metric exported to OpenTelemetry is on a panel, but those :data:`NOT_ON_DASHBOARD` lists). Then
every metric name its PromQL names, and every label it groups a metric by, is looked up in live
scrapes: a real ``rtfleet run`` of a scenario made to touch every panel (audio turns cut by a
connection drop, a refused-key window that leaves an outage abandoned, a tool call,
transcription sessions, server error events, protocol errors, an audio flood that drops audio,
a turn that times out) and a real ``rtfleet serve`` for the server's row, both subprocesses
serving ``--metrics-port`` on loopback. With Debian's ``prometheus`` installed, a real
Prometheus scrapes both as well and must accept every panel query, as Grafana sends it with
all populations selected, and answer it with data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import wave
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.scenario.runmetrics import OTEL_COUNTERS, OTEL_FAMILIES, OTEL_HISTOGRAMS

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "rtfleet.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: the row of ``rtfleet serve``'s own metrics (``rtfleet_server_*``; note that
#: ``rtfleet_server_errors_total`` is a *run* metric: server error events a run's clients saw)
SERVER_ROW = "Embedded server"
#: run metrics the dashboard leaves out, and why (every other one must be on it)
NOT_ON_DASHBOARD = {
    # transitions into the error state: no scenario here produces one reliably, so a panel on
    # it could not be checked against a live scrape
    "sessions.errored",
}

SCENARIO = """\
name: dashboard
seed: 7
duration_limit: 40s
target: embedded
session:
  output_modalities: [audio]
  turn_detection: null
  transcription: {model: gpt-4o-transcribe}
  extra:
    tool_choice: auto
    tools:
      - type: function
        name: get_weather
        parameters: {type: object, properties: {city: {type: string}}, required: [city]}
populations:
  - {name: voice, script: talk, sessions: 3}
  - {name: callers, script: weather, sessions: 1}
  - {name: dictation, session_type: transcription, script: dictate, sessions: 2}
  - {name: flood, script: flood, sessions: 1}
  - {name: fragile, script: fragile, sessions: 1}
  - {name: broken, script: broken, sessions: 1}
  - {name: live, protocol: live, script: chat, sessions: 1}
scripts:
  chat:                       # Live bills whole seconds (usage.seconds): the session the drop
    - say: hello there        # restores must live past a second before its last answer ends,
    - pause: 1.5s             # or no live_active_seconds is ever counted
    - say: and again
    - pause: 1.5s
    - say: once more
  talk:
    - repeat: 5
      steps:
        - play: hello.wav
        - wait_transcript: 10s
  dictate:
    - repeat: 4
      steps:
        - play: hello.wav
        - wait_transcript: 10s
  weather:
    - say: "call get_weather city=Paris"
    - expect_tool_call: get_weather
      arguments: {city: Paris}
    - answer_tool_call: 'Sunny in $city'
  flood:                      # 7 s of audio at once: more than the 5 s audio queue holds
    - play: long.wav
      realtime: false
    - wait_response: 10s
  fragile:                    # ends while reconnecting (keys refused): an abandoned outage
    - pause: 2s
  broken:                     # server error events, then a turn that times out
    - cancel
    - send: {type: conversation.item.delete, item_id: item_nope}
    - pause: 300ms
    - say: hello
      timeout: 1ms
faults:
  - {at: 1s, action: reject_keys, for: 2s}
  - {at: 1200ms, action: drop_connections, percent: 100}
  - {at: 4s, action: malformed, count: 2}   # once reconnected
"""

_SELECTOR = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_NAME = re.compile(r"rtfleet_[a-z0-9_]+")
_HISTOGRAM_SUFFIX = re.compile(r"_(bucket|count|sum)$")
#: ``by (labels) (name`` or ``by (labels) (rate(name`` / ``increase(name``
_GROUPED = re.compile(r"\bby\s*\(([^()]*)\)\s*\((?:(?:rate|increase)\()?(rtfleet_[a-z0-9_]+)")


def panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def queries(dashboard: dict) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in panels(dashboard)
            for target in panel.get("targets", [])]


def server_panel_titles(dashboard: dict) -> set[str]:
    """Titles of the panels in the embedded server's row (``rtfleet serve``'s metrics)."""
    titles: set[str] = set()
    row = ""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            inside = panel.get("panels", [])
        else:
            inside = [panel]
        if row.startswith(SERVER_ROW):
            titles.update(p["title"] for p in inside)
    return titles


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label names in selectors and groupings
    aside)."""
    bare = _GROUPING.sub(" ", _SELECTOR.sub(" ", expr))
    return set(_NAME.findall(bare))


def variable_queries(dashboard: dict) -> list[tuple[str, str]]:
    """``(metric, label)`` of every ``label_values(metric, label)`` template variable."""
    out = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_]\w*)\s*\)\s*", query)
        assert match, (variable["name"], query)
        out.append((match[1], match[2]))
    return out


def test_the_dashboard_is_structurally_sane():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "rtfleet" and dashboard["title"] == "rtfleet"
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name, label in (("population", "rtfleet_population"), ("transport", "rtfleet_transport")):
        assert variables[name]["type"] == "query" and variables[name]["datasource"] == DATASOURCE
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    assert {label for _, label in variable_queries(dashboard)} == {"rtfleet_population", "rtfleet_transport"}

    every = panels(dashboard)
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = [panel["title"] for panel in every]
    assert len(titles) == len(set(titles)), "panel titles must be unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in every:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):  # no two panels overlap
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat"), (panel["title"], panel["type"])
        assert panel["datasource"] == DATASOURCE, panel["title"]
        targets = panel.get("targets") or []
        assert targets and all(t.get("expr", "").strip() for t in targets), panel["title"]
        assert all(t["datasource"] == DATASOURCE for t in targets), panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in targets:
            assert metric_names(target["expr"]), (panel["title"], target["expr"])
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_the_dashboard_shows_every_run_metric_but_the_listed_ones():
    dashboard = json.loads(DASHBOARD.read_text())
    used = set().union(*(metric_names(expr) for _, expr in queries(dashboard)))
    used = {_HISTOGRAM_SUFFIX.sub("", name) for name in used}
    missing = []
    for name in sorted(OTEL_COUNTERS | OTEL_HISTOGRAMS | {p.rstrip(".") for p in OTEL_FAMILIES}):
        base = "rtfleet_" + name.replace(".", "_")
        wanted = {base + "_seconds"} if name in OTEL_HISTOGRAMS else {base + "_total"}
        if name not in NOT_ON_DASHBOARD and not wanted & used:
            missing.append(name)
    assert not missing, f"run metrics on no panel (add them, or to NOT_ON_DASHBOARD): {missing}"
    assert "rtfleet_sessions" in used  # sessions by state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Scrapes:
    """What the scrapes of one process showed: sample names, family types, labels by sample."""

    def __init__(self) -> None:
        self.samples: set[str] = set()
        self.types: dict[str, str] = {}
        self.labels: dict[str, set[str]] = {}
        self.count = 0

    def add(self, text: str) -> None:
        self.count += 1
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples.add(sample.name)
                self.labels.setdefault(sample.name, set()).update(sample.labels)


async def scrape_until_exit(client: httpx.AsyncClient, url: str, process: trio.Process,
                            into: Scrapes) -> None:
    """Scrape ``url`` every 200 ms until ``process`` exits (the run lingers for one last
    scrape: the one that saw the final figures lets it end)."""
    while process.returncode is None:
        try:
            response = await client.get(url)
        except httpx.TransportError:  # not listening yet, or gone
            pass
        else:
            assert response.status_code == 200, response.text
            into.add(response.text)
        with trio.move_on_after(0.2):
            await process.wait()


async def scrape_once_ready(client: httpx.AsyncClient, url: str, process: trio.Process,
                            into: Scrapes) -> None:
    """Scrape ``url`` (polling another process) until one scrape has the server's metrics."""
    while "rtfleet_server_connections_total" not in into.samples:
        assert process.returncode is None, "rtfleet serve exited"
        try:
            response = await client.get(url)
        except httpx.TransportError:
            await trio.sleep(0.1)
            continue
        assert response.status_code == 200, response.text
        into.add(response.text)


def write_scenario(directory: Path) -> Path:
    shutil.copy(ROOT / "scenarios" / "audio" / "hello.wav", directory / "hello.wav")
    with wave.open(str(directory / "long.wav"), "wb") as out:  # 7 s of PCM16 24 kHz silence
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(24_000)
        out.writeframes(bytes(2 * 24_000 * 7))
    path = directory / "dashboard.yaml"
    path.write_text(SCENARIO)
    return path


def prometheus_binary() -> str | None:
    """Debian's ``prometheus`` (``scripts/test.sh`` installs it); without it the PromQL part of
    the live test is left out, unless ``RTFLEET_REQUIRE_PROMETHEUS`` is set (CI), when it fails."""
    path = shutil.which("prometheus")
    if path is None and os.environ.get("RTFLEET_REQUIRE_PROMETHEUS"):
        pytest.fail("prometheus is not installed, and RTFLEET_REQUIRE_PROMETHEUS is set")
    return path


async def start_prometheus(nursery: trio.Nursery, client: httpx.AsyncClient, binary: str,
                           directory: Path, log: Any, targets: list[int]) -> tuple[trio.Process, str]:
    """A Prometheus on loopback scraping ``targets`` every 200 ms, once it is ready."""
    port = free_port()
    config = directory / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 200ms, scrape_timeout: 150ms}\n"
        "scrape_configs:\n"
        + "".join(f"  - job_name: t{p}\n    static_configs: [{{targets: ['127.0.0.1:{p}']}}]\n"
                  for p in targets))
    process = await nursery.start(partial(
        trio.run_process, [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'tsdb'}",
                           f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        check=False, stdout=subprocess.DEVNULL, stderr=log))
    base = f"http://127.0.0.1:{port}"
    with trio.fail_after(20):  # polling another process until it is ready
        while True:
            assert process.returncode is None, (directory / "prometheus.log").read_text()[-2000:]
            try:
                if (await client.get(f"{base}/-/ready")).status_code == 200:
                    return process, base
            except httpx.TransportError:
                pass
            await trio.sleep(0.1)


def grafana_to_promql(expr: str) -> str:
    """The query Grafana sends with every population and transport selected."""
    return (expr.replace("$__rate_interval", "1m").replace("$population", ".*")
            .replace("$transport", ".*"))


async def test_every_metric_a_panel_queries_is_in_a_live_scrape(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    scenario = write_scenario(tmp_path)
    run_port, serve_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RTFLEET_"))}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "orchestrator"]
    run_scrapes, serve_scrapes = Scrapes(), Scrapes()
    run_log, serve_log = tmp_path / "run.log", tmp_path / "serve.log"
    binary = prometheus_binary()
    answers: dict[str, dict] = {}
    with (trio.fail_after(60), open(run_log, "wb") as run_err, open(serve_log, "wb") as serve_err,
          open(tmp_path / "prometheus.log", "wb") as prometheus_err):
        async with httpx.AsyncClient(timeout=5) as client, trio.open_nursery() as nursery:
            # leaving the nursery with an error (a failure, the timeout) cancels it, which
            # kills every process still running
            if binary is not None:
                prometheus, base = await start_prometheus(nursery, client, binary, tmp_path,
                                                          prometheus_err, [run_port, serve_port])
            began = trio.current_time()
            serve = await nursery.start(partial(
                trio.run_process, [*command, "serve", "--host", "127.0.0.1", "--port", "0",
                                   "--api-key", "sk-test-dashboard", "--metrics-port", str(serve_port)],
                cwd=tmp_path, env=env, check=False, stdout=subprocess.DEVNULL, stderr=serve_err))
            run = await nursery.start(partial(
                trio.run_process, [*command, "run", str(scenario), "--quiet", "--out", str(tmp_path / "out"),
                                   "--metrics-port", str(run_port), "--metrics-linger", "15"],
                cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL, stderr=run_err))
            try:
                await scrape_once_ready(client, f"http://127.0.0.1:{serve_port}/metrics", serve,
                                        serve_scrapes)
                await scrape_until_exit(client, f"http://127.0.0.1:{run_port}/metrics", run, run_scrapes)
                if binary is not None:  # every panel query, as Grafana asks it, over the run
                    span = trio.current_time() - began + 5
                    for _, expr in queries(dashboard):
                        response = await client.get(f"{base}/api/v1/query_range", params={
                            "query": grafana_to_promql(expr), "start": f"{_now() - span:.3f}",
                            "end": f"{_now():.3f}", "step": "0.5"})
                        answers[expr] = response.json()
            finally:
                serve.terminate()
                if binary is not None:
                    prometheus.terminate()
    assert run.returncode == 0, run_log.read_text()[-3000:]
    assert run_scrapes.count >= 2 and serve_scrapes.count >= 1

    problems = []
    server_panels = server_panel_titles(dashboard)
    assert len(server_panels) >= 3
    for title, expr in queries(dashboard):
        names = metric_names(expr)
        seen = serve_scrapes if title in server_panels else run_scrapes
        for name in sorted(names):
            if _HISTOGRAM_SUFFIX.search(name) and seen.types.get(_HISTOGRAM_SUFFIX.sub("", name)) != "histogram":
                problems.append(f"{title}: {name} is not a histogram's series")
            elif name not in seen.samples:
                problems.append(f"{title}: {name} is in no scrape")
        for grouping, name in _GROUPED.findall(expr):  # sum by (labels) (rate(name…)): on name
            absent = {x.strip() for x in grouping.split(",")} - seen.labels.get(name, set())
            if name in seen.samples and absent:
                problems.append(f"{title}: {name} has no label {sorted(absent)}")
    for metric, label in variable_queries(dashboard):
        if label not in run_scrapes.labels.get(metric, set()):
            problems.append(f"variable label_values({metric}, {label}): not in a scrape")
    for title, expr in queries(dashboard):
        if binary is not None:
            answer = answers[expr]
            if answer.get("status") != "success":
                problems.append(f"{title}: Prometheus refused {expr!r}: {answer.get('error')}")
            elif not answer["data"]["result"]:
                problems.append(f"{title}: no data for {expr!r}")
    assert not problems, "\n".join(problems)


def _now() -> float:
    return time.time()
