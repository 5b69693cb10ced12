"""The report in a real browser: headless Chromium, driven over the Chrome DevTools Protocol.

Why raw CDP over trio-websocket rather than Playwright: it needs no extra Python package (the
Playwright package brings a Node driver and wants to manage its own browser builds), it runs
natively in trio under pytest-trio, and the few commands used here (create a page, navigate,
evaluate, screenshot, collect console/log/exception/network events) are a stable core of the
protocol. Chromium is started with ``--remote-debugging-port=0``; the chosen port is read from
the "DevTools listening on ws://..." line on its stderr (an event, not a poll). The browser
runs in its own process group, which is killed whatever happens.

Chromium comes from Debian (``apt-get install chromium``). Without it this test skips, unless
``RTFLEET_REQUIRE_BROWSER`` is set (CI sets it), when it fails. ``RTFLEET_CHROMIUM`` names
another binary.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import signal
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from orchestrator.report import write_report

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results-sample.json"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]
HOSTILE = '</title><script>alert("name")</script><img src=x onerror=alert(1)>'
PLOTS_JS = """Array.from(document.querySelectorAll('[data-plot]'), e => {
  const r = e.getBoundingClientRect();
  const s = e.querySelector('svg');
  const sr = s ? s.getBoundingClientRect() : {width: 0, height: 0};
  return {name: e.dataset.plot, width: r.width, height: r.height,
          svgWidth: sr.width, svgHeight: sr.height,
          ticks: e.querySelectorAll('svg text.tick').length,
          axisLabels: e.querySelectorAll('svg text.axis-label').length,
          title: (e.querySelector('h3') || {}).textContent || ''};
})"""


@pytest.fixture
def chromium() -> str:
    """The browser's path; a plain (not trio) fixture, so that the skip or failure reaches
    pytest as itself rather than inside an exception group."""
    path = os.environ.get("RTFLEET_CHROMIUM") or shutil.which("chromium")
    if path and os.access(path, os.X_OK):
        return path
    reason = "chromium is not installed (apt-get install chromium)"
    if os.environ.get("RTFLEET_REQUIRE_BROWSER"):
        pytest.fail(f"{reason}, and RTFLEET_REQUIRE_BROWSER is set")
    pytest.skip(f"{reason}; set RTFLEET_REQUIRE_BROWSER=1 to make this a failure")


class CdpError(Exception):
    pass


class Cdp:
    """A minimal DevTools client: `call` sends a command and waits for its reply; every event
    is kept in `events` (in order) and `wait_event` waits for one."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, list[Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._changed = trio.Event()
        self.closed = False

    async def run(self) -> None:
        try:
            while True:
                try:
                    message = await self._ws.get_message()
                except ConnectionClosed:
                    return
                data = json.loads(message)
                if "id" in data:
                    slot = self._pending.pop(data["id"], None)
                    if slot is not None:
                        slot[1] = data
                        slot[0].set()
                else:
                    self.events.append(data)
                    self._changed.set()
                    self._changed = trio.Event()
        finally:
            self.closed = True
            self._changed.set()
            for slot in self._pending.values():
                slot[1] = {"error": {"message": "DevTools connection closed"}}
                slot[0].set()

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        slot: list[Any] = [trio.Event(), None]
        self._pending[ident] = slot
        await self._ws.send_message(json.dumps(message))
        await slot[0].wait()
        reply = slot[1]
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]

    async def wait_event(self, method: str, session: str | None, since: int) -> dict[str, Any]:
        i = since
        while True:
            for event in self.events[i:]:
                if event["method"] == method and event.get("sessionId") == session:
                    return event
            i = len(self.events)
            if self.closed:
                raise CdpError(f"DevTools connection closed while waiting for {method}")
            await self._changed.wait()

    async def evaluate(self, session: str, expression: str) -> Any:
        reply = await self.call("Runtime.evaluate", session, expression=expression,
                                returnByValue=True)
        if "exceptionDetails" in reply:
            raise CdpError(f"evaluating {expression[:60]!r}: {reply['exceptionDetails']}")
        return reply["result"].get("value")


async def _watch_stderr(stream: trio.abc.ReceiveStream, log: list[str], *,
                        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Keep reading Chromium's stderr (so it never blocks on a full pipe); report the
    DevTools URL as soon as it is printed."""
    buffer, started = b"", False
    async for chunk in stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            log.append(line)
            del log[:-200]
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match and not started:
                started = True
                task_status.started(match.group(1))
    if not started:
        tail = "\n".join(log[-30:])
        raise RuntimeError(f"chromium exited before DevTools listened; its stderr:\n{tail}")


def _kill_group(process: trio.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its own group: start_new_session=True
    except ProcessLookupError:
        pass


class Page:
    """One tab, attached in flat mode, with the Page, Runtime, Log and Network domains on."""

    def __init__(self, cdp: Cdp, session: str) -> None:
        self.cdp, self.session = cdp, session

    @classmethod
    async def open(cls, cdp: Cdp) -> Page:
        target = (await cdp.call("Target.createTarget", url="about:blank"))["targetId"]
        session = (await cdp.call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
        page = cls(cdp, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            await cdp.call(f"{domain}.enable", session)
        await page.resize(1280, 900)
        return page

    async def resize(self, width: int, height: int) -> None:
        await self.cdp.call("Emulation.setDeviceMetricsOverride", self.session, width=width,
                            height=height, deviceScaleFactor=1, mobile=False)

    async def load(self, path: Path) -> list[dict[str, Any]]:
        """Navigate to ``path`` and wait for its load event; returns the events it caused."""
        since = len(self.cdp.events)
        reply = await self.cdp.call("Page.navigate", self.session, url=path.as_uri())
        assert "errorText" not in reply, reply
        await self.cdp.wait_event("Page.loadEventFired", self.session, since)
        # one more round trip, so that events queued before it have been read
        await self.cdp.evaluate(self.session, "document.readyState")
        return [e for e in self.cdp.events[since:] if e.get("sessionId") == self.session]

    async def screenshot(self, path: Path) -> tuple[int, int]:
        metrics = await self.cdp.call("Page.getLayoutMetrics", self.session)
        height = min(int(metrics["cssContentSize"]["height"]) + 1, 16000)
        await self.resize(1280, height)
        shot = await self.cdp.call("Page.captureScreenshot", self.session, format="png",
                                   captureBeyondViewport=True)
        data = base64.b64decode(shot["data"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        path.write_bytes(data)
        await self.resize(1280, 900)
        return struct.unpack(">II", data[16:24])


def _problems(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions, error log entries, dialogs and any request
    that leaves the page's own file (a self-contained page makes none)."""
    out = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Runtime.exceptionThrown":
            out.append(f"exception: {params.get('exceptionDetails')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} ({params['entry'].get('url')})")
        elif method == "Page.javascriptDialogOpening":
            out.append(f"dialog: {params.get('message')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file://", "data:")):
                out.append(f"request: {url}")
    return out


def _results(**changes: Any) -> dict[str, Any]:
    results = json.loads(FIXTURE.read_text(encoding="utf-8"))
    results.update(changes)
    return results


async def test_report_renders_cleanly_in_chromium(chromium: str, tmp_path: Path) -> None:
    sample_dir, empty_dir, hostile_dir = (tmp_path / n for n in ("sample", "empty", "hostile"))
    for d in (sample_dir, empty_dir, hostile_dir):
        d.mkdir()
    sample = write_report(sample_dir, _results())
    empty = write_report(empty_dir, {"format": 1, "scenario": {"name": "empty run"},
                                     "verdict": "pass", "duration_s": 0.0})
    hostile_results = _results()
    hostile_results["scenario"]["name"] = HOSTILE
    hostile_results["marks"].append({"t": 5.0, "kind": "fault", "label": HOSTILE})
    hostile = write_report(hostile_dir, hostile_results)

    log: list[str] = []
    process = await trio.lowlevel.open_process(
        [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        with trio.fail_after(90):
            async with trio.open_nursery() as nursery:
                assert process.stderr is not None
                url = await nursery.start(_watch_stderr, process.stderr, log)
                async with open_websocket_url(url, max_message_size=2**28,
                                              disconnect_timeout=5) as ws:
                    cdp = Cdp(ws)
                    nursery.start_soon(cdp.run)
                    page = await Page.open(cdp)

                    events = await page.load(sample)
                    assert _problems(events) == []
                    plots = {p["name"]: p for p in await cdp.evaluate(page.session, PLOTS_JS)}
                    expected = {"sessions", "events", "throughput",
                                "percentiles:turn.time_to_first_text",
                                "percentiles:turn.time_to_first_audio",
                                "percentiles:turn.duration",
                                "histogram:turn.time_to_first_text",
                                "histogram:turn.time_to_first_audio", "histogram:turn.duration",
                                "histogram:connect.duration", "histogram:reconnect.duration",
                                "histogram:audio.frame_lateness"}
                    assert set(plots) == expected
                    for plot in plots.values():
                        assert plot["width"] > 300 and plot["height"] > 150, plot
                        assert plot["svgWidth"] > 300 and plot["svgHeight"] > 100, plot
                        assert plot["ticks"] >= 4 and plot["axisLabels"] == 2, plot
                        assert plot["title"], plot
                    width, height = await page.screenshot(tmp_path / "report.png")
                    assert width == 1280 and height > 2000
                    print(f"screenshot: {tmp_path / 'report.png'}")

                    events = await page.load(empty)
                    assert _problems(events) == []
                    plots = {p["name"]: p for p in await cdp.evaluate(page.session, PLOTS_JS)}
                    assert {"sessions", "events", "throughput"} <= set(plots)
                    assert all(p["width"] > 300 and p["height"] > 150 for p in plots.values())
                    await page.screenshot(tmp_path / "report-empty.png")

                    events = await page.load(hostile)
                    assert _problems(events) == []
                    found = await cdp.evaluate(
                        page.session,
                        "[document.scripts.length, document.images.length, document.title,"
                        " document.querySelector('h1 .name').textContent]")
                    assert found[:2] == [0, 0]
                    assert found[2].startswith(HOSTILE) and found[3] == HOSTILE

                _kill_group(process)  # and so end _watch_stderr
    finally:
        _kill_group(process)
        with trio.CancelScope(shield=True, deadline=trio.current_time() + 10) as cleanup:
            await process.wait()
        assert not cleanup.cancelled_caught, f"chromium {process.pid} did not exit"
