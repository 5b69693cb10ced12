"""``rtfleet run --ui``: the live page, over real sockets and in headless Chromium.

The runs are real ``rtfleet run`` processes against the embedded server, with the page on
port 0 of 127.0.0.1 (its URL read from stderr); nothing sleeps to wait: the tests poll
``/state.json`` (or the browser's DOM) until what they expect shows, within a deadline.

The browser test drives Chromium over CDP (``tests/browser_cdp.py``): without Chromium it skips,
unless ``RTFLEET_REQUIRE_BROWSER`` is set (CI sets it), when it fails. ``RTFLEET_CHROMIUM``
names another binary.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from orchestrator.cli import main
from orchestrator.report.live import LivePage, _loopback_host
from orchestrator.scenario.results import redact_text

from tests.browser_cdp import chromium_or_skip, launch_chromium

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-livepagetest0123456789"
#: two sessions taking turns for a few seconds: counters and plots move every second
SCENARIO = f"""
name: live page
description: "Two chatty sessions (a key-like {SECRET} that the page must not show)"
seed: 3
duration_limit: 1m
target: embedded
session: {{output_modalities: [text], turn_detection: null}}
populations:
  - name: talkers
    script: chat
    phases: [{{duration: SECONDS, concurrency: 2}}]
scripts:
  chat:
    - repeat: 10000
      steps:
        - say: hello
        - pause: 150ms
"""


def _scenario(tmp_path: Path, seconds: float) -> Path:
    path = tmp_path / "live.yaml"
    path.write_text(SCENARIO.replace("SECONDS", f"{seconds:g}s"))
    return path


@attrs.define(eq=False)
class LiveRun:
    process: trio.Process
    stderr: list[str] = attrs.field(factory=list)
    stdout: list[str] = attrs.field(factory=list)
    changed: trio.Event = attrs.field(factory=trio.Event)
    url: str = ""

    async def pump(self, stream: trio.abc.ReceiveStream, into: list[str]) -> None:
        pending = b""
        async for chunk in stream:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            into.extend(line.decode(errors="replace") for line in complete)
            self.changed.set()
            self.changed = trio.Event()
        self.changed.set()

    async def wait_url(self) -> str:
        while True:
            for line in self.stderr:
                found = re.match(r"live page: (http://\S+)", line)
                if found:
                    return found.group(1)
            if self.process.returncode is not None:
                raise AssertionError("rtfleet run exited: " + "\n".join(self.stderr))
            await self.changed.wait()


@asynccontextmanager
async def live_run(*args: str) -> AsyncIterator[LiveRun]:
    """``rtfleet run ... --ui 0`` in a subprocess, known by the URL it prints."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "orchestrator", "run", *args, "--ui", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    run = LiveRun(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.pump, process.stdout, run.stdout)
            nursery.start_soon(run.pump, process.stderr, run.stderr)
            with trio.fail_after(60):
                run.url = await run.wait_url()
            yield run
            with trio.fail_after(60):
                await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def _poll(fetch: Callable[[], Any], until: Callable[[Any], bool], what: str) -> Any:
    """``fetch()`` again and again until ``until(value)``; fails after 30 s naming ``what``."""
    last = None
    with trio.move_on_after(30):
        while True:
            last = await fetch()
            if until(last):
                return last
            await trio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {str(last)[:400]}")


def _plots(html: str) -> dict[str, str]:
    """Each figure's SVG by its data-plot name."""
    return dict(re.findall(r'<figure class="plot" data-plot="([^"]+)">(.*?)</figure>', html, re.S))


def _check_csp(policy: str, *, script: str | None) -> None:
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert "'unsafe-eval'" not in policy
    for name in ("base-uri", "form-action", "frame-ancestors"):
        assert directives[name] == ["'none'"], name
    if script is None:
        assert "script-src" not in directives and "connect-src" not in directives
    else:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert directives["script-src"] == [f"'sha256-{digest}'"]  # the page's one script only
        assert directives["connect-src"] == ["'self'"]


async def test_live_page_follows_the_run_and_ends_on_its_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    served: list[str] = []
    async with live_run(str(_scenario(tmp_path, 4)), "--out", str(out), "--ui-linger", "60") as run:
        assert run.url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=run.url, timeout=10) as http:
            page = await http.get("/")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            served.append(page.text)
            scripts = re.findall(r"<script>(.*?)</script>", page.text, re.S)
            assert len(scripts) == 1
            _check_csp(page.headers["content-security-policy"], script=scripts[0])
            assert page.headers["x-content-type-options"] == "nosniff"

            async def state() -> dict[str, Any]:
                response = await http.get("/state.json")
                assert response.status_code == 200
                served.append(response.text)
                return response.json()

            first = await _poll(state, lambda s: s["state"] == "running"
                                and s["counters"].get("turns.completed", 0) > 0, "turns")
            second = await _poll(state, lambda s: s["state"] == "done" or (
                s["version"] > first["version"] and s["t"] > first["t"]
                and s["counters"]["turns.completed"] > first["counters"]["turns.completed"]),
                "a later state")
            assert second["state"] == "running", "the run ended before a second state"
            before, after = _plots(first["html"]), _plots(second["html"])
            assert {"sessions", "events", "throughput", "percentiles:turn.duration"} <= set(before)
            assert set(before) <= set(after)
            assert before["throughput"] != after["throughput"]
            assert before["sessions"] != after["sessions"]
            assert 'class="badge running"' in second["html"]
            assert "rtfleet live run" in second["html"]

            # Only the loopback name gets an answer (no DNS rebinding); only GET.
            port = run.url.rsplit(":", 1)[1].strip("/")
            foreign = await http.get("/state.json", headers={"host": f"rebound.example:{port}"})
            assert foreign.status_code == 403
            assert (await http.post("/state.json")).status_code == 405
            assert (await http.get("/nothing")).status_code == 404

            await _poll(state, lambda s: s["state"] == "done", "the end of the run")
            final = await http.get("/")  # the browser's reload: ends --ui-linger at once
            served.append(final.text)
            _check_csp(final.headers["content-security-policy"], script=None)
            assert "<script" not in final.text and "rtfleet run report" in final.text
    assert run.process.returncode == 0, "\n".join(run.stderr)
    assert "Traceback" not in "\n".join(run.stderr)
    # The page at the end is the run's report.html.
    assert final.text == redact_text((out / "report.html").read_text())
    # A key-like string from the scenario reaches neither the page nor the file.
    assert SECRET not in (out / "report.html").read_text()
    assert not any(SECRET in text for text in served)


def test_a_port_in_use_exits_2_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["run", str(ROOT / "scenarios/smoke.yaml"), "--quiet", "--ui", str(port)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"--ui: cannot serve the live page on 127.0.0.1:{port}" in err
    assert "in use" in err.lower() and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_ui_with_workers_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(ROOT / "scenarios/smoke.yaml"), "--ui", "0", "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "--ui" in err and "--workers" in err and "Traceback" not in err
    assert main(["run", str(ROOT / "scenarios/smoke.yaml"), "--ui", "70000"]) == 2
    assert main(["run", str(ROOT / "scenarios/smoke.yaml"), "--ui", "0",
                 "--ui-linger", "-1"]) == 2


def test_loopback_host_header() -> None:
    assert _loopback_host("127.0.0.1:8080", 8080)
    assert _loopback_host("localhost:8080", 8080) and _loopback_host("localhost", 8080)
    assert _loopback_host("[::1]:8080", 8080)
    assert not _loopback_host("127.0.0.1:9090", 8080)
    assert not _loopback_host("rebound.example:8080", 8080)
    assert not _loopback_host("", 8080) and not _loopback_host("[::1]x", 8080)


async def test_one_rendering_serves_the_polls_of_a_second() -> None:
    """The results are built (on the run's loop) at most once a second, however many poll."""
    calls = 0

    def snapshot() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"format": 1, "scenario": {"name": "x"}, "verdict": "running",
                "duration_s": float(calls), "summary": {"counters": {"turns.completed": calls}}}

    page = LivePage()
    assert (await page.state())["state"] == "starting"
    page.attach(snapshot)
    states = [await page.state() for _ in range(5)]
    assert calls == 1 and {s["version"] for s in states} == {1}
    assert states[0]["counters"] == {"turns.completed": 1}
    page.finish({"format": 1, "scenario": {"name": "x"}, "verdict": "pass"})
    assert (await page.state())["state"] == "done"


# ------------------------------------------------------------------------------- browser

LIVE_JS = """(() => {
  const figure = (name) => document.querySelector(`[data-plot="${name}"] svg`);
  const card = Array.from(document.querySelectorAll('.card'))
    .find((c) => c.querySelector('.label').textContent === 'turns completed');
  return {status: (document.getElementById('live-status') || {}).className || '',
          statusText: (document.getElementById('live-status') || {}).textContent || '',
          eyebrow: (document.querySelector('.eyebrow') || {}).textContent || '',
          plots: document.querySelectorAll('[data-plot]').length,
          throughput: figure('throughput') ? figure('throughput').outerHTML : '',
          width: figure('sessions') ? figure('sessions').getBoundingClientRect().width : 0,
          turns: card ? card.querySelector('.value').textContent : '',
          scripts: document.scripts.length};
})()"""


@pytest.fixture
def chromium() -> str:
    """The browser's path; a plain (not trio) fixture, so that the skip or failure reaches
    pytest as itself rather than inside an exception group."""
    return chromium_or_skip()


async def test_live_page_in_chromium(chromium: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shots = tmp_path / "shots"
    shots.mkdir()
    with trio.fail_after(120):
        async with live_run(str(_scenario(tmp_path, 10)), "--out", str(out),
                            "--ui-linger", "60") as run, \
                launch_chromium(chromium, tmp_path / "profile") as browser:
            page = await browser.new_page(1280, 900, network=True)
            await page.navigate(run.url)

            async def look() -> dict[str, Any]:
                return await page.evaluate(LIVE_JS)

            first = await _poll(look, lambda s: s["status"] == "ok" and s["throughput"]
                                and s["turns"] not in ("", "0"), "the first live figures")
            assert first["eyebrow"] == "rtfleet live run" and first["plots"] >= 6
            assert first["width"] > 900 and first["scripts"] == 1
            second = await _poll(look, lambda s: s["eyebrow"] != "rtfleet live run" or (
                s["throughput"] != first["throughput"] and s["turns"] != first["turns"]),
                "the figures to change")
            assert second["eyebrow"] == "rtfleet live run", "the run ended before a change"
            width, height = await page.screenshot(shots / "live.png", full_page=True)
            assert width == 1280 and height > 1500
            print(f"screenshot: {shots / 'live.png'}")

            end = await _poll(look, lambda s: s["eyebrow"] == "rtfleet run report",
                              "the final report")
            assert end["scripts"] == 0
            await page.screenshot(shots / "final.png", full_page=True)
            assert page.problems() == []  # no console errors, no CSP violations
            requests = [e["params"]["request"]["url"] for e in page.events()
                        if e["method"] == "Network.requestWillBeSent"]
            assert requests and all(u.startswith(run.url) for u in requests), requests
    assert run.process.returncode == 0, "\n".join(run.stderr)
