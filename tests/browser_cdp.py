"""Headless Chromium for tests, driven over the Chrome DevTools Protocol (CDP) with trio-websocket.

::

    async with launch_chromium(path, profile_dir, extra_flags=[...]) as browser:
        page = await browser.new_page()
        await page.navigate("http://127.0.0.1:PORT/demo")
        value = await page.evaluate("1 + 1")                      # returned by value
        await page.evaluate("somePromise()", await_promise=True)  # waits for the promise
        await page.screenshot(tmp_path / "page.png")
        page.problems()   # console errors, uncaught exceptions, error log entries, so far

Chromium is started with ``--remote-debugging-port=0`` in its own process group; the DevTools
URL is read from its stderr ("DevTools listening on ws://…"), which keeps being drained so the
browser never blocks on a full pipe. Whatever happens, the whole group is killed on exit.
:func:`chromium_or_skip` finds the binary (``RTFLEET_CHROMIUM`` or ``chromium`` on PATH): a
test skips without it unless ``RTFLEET_REQUIRE_BROWSER`` is set, when it fails.

Import it from a test as ``tests.browser_cdp`` (the repository root is on ``sys.path`` with
``python -m pytest``), or load it by path.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

__all__ = ["BASE_FLAGS", "Browser", "CdpError", "Page", "chromium_or_skip", "launch_chromium",
           "problems_in"]

#: the flags every test browser gets (no network beyond the page's own origin, no sandbox
#: needed as root, no GPU)
BASE_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)


class CdpError(Exception):
    pass


def chromium_or_skip() -> str:
    """The browser's path, or skip (fail when ``RTFLEET_REQUIRE_BROWSER`` is set)."""
    path = os.environ.get("RTFLEET_CHROMIUM") or shutil.which("chromium")
    if path and os.access(path, os.X_OK):
        return path
    reason = "chromium is not installed (apt-get install chromium)"
    if os.environ.get("RTFLEET_REQUIRE_BROWSER"):
        pytest.fail(f"{reason}, and RTFLEET_REQUIRE_BROWSER is set")
    pytest.skip(f"{reason}; set RTFLEET_REQUIRE_BROWSER=1 to make this a failure")


class _Connection:
    """One DevTools websocket: commands matched to replies by id, events kept in order."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._replies: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._new_event = trio.Event()
        self.closed = False

    async def pump(self) -> None:
        try:
            while True:
                try:
                    data = json.loads(await self.ws.get_message())
                except ConnectionClosed:
                    return
                if "id" in data:
                    reply = self._replies.pop(data["id"], None)
                    if reply is not None:
                        reply.send_nowait(data)
                else:
                    self.events.append(data)
                    self._new_event.set()
                    self._new_event = trio.Event()
        finally:
            self.closed = True
            self._new_event.set()
            for reply in self._replies.values():
                reply.send_nowait({"error": {"message": "the DevTools connection closed"}})

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._replies[ident] = send
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.ws.send_message(json.dumps(message))
        reply = await receive.receive()
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    async def wait_event(self, method: str, session: str | None, since: int) -> dict[str, Any]:
        seen = since
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            if self.closed:
                raise CdpError(f"the DevTools connection closed while waiting for {method}")
            await self._new_event.wait()


class Page:
    """One tab (flat session) with Page, Runtime and Log events on."""

    def __init__(self, connection: _Connection, session: str, width: int, height: int) -> None:
        self._cdp = connection
        self.session = session
        self._since = len(connection.events)
        self.size = (width, height)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self._cdp.call(method, self.session, **params)

    async def navigate(self, url: str) -> list[dict[str, Any]]:
        """Go to ``url``, wait for its load event; returns this page's events since the start."""
        since = len(self._cdp.events)
        reply = await self.call("Page.navigate", url=url)
        if reply.get("errorText"):
            raise CdpError(f"navigating to {url}: {reply['errorText']}")
        await self._cdp.wait_event("Page.loadEventFired", self.session, since)
        await self.evaluate("document.readyState")  # a round trip: earlier events are in
        return [e for e in self._cdp.events[since:] if e.get("sessionId") == self.session]

    async def resize(self, width: int, height: int) -> None:
        await self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=False)

    async def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                awaitPromise=await_promise)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            raise CdpError(f"evaluating {expression[:80]!r}: {text}")
        return reply["result"].get("value")

    async def screenshot(self, path: Path, *, full_page: bool = False) -> tuple[int, int]:
        """A PNG of the page (``full_page``: the viewport grown to the content's height, at most
        16,000 px, for the shot); returns its (width, height)."""
        if full_page:
            metrics = await self.call("Page.getLayoutMetrics")
            height = min(int(metrics["cssContentSize"]["height"]) + 1, 16000)
            await self.resize(self.size[0], height)
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        if full_page:
            await self.resize(*self.size)
        data = base64.b64decode(shot["data"])
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            raise CdpError("the screenshot is not a PNG")
        path.write_bytes(data)
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")

    def events(self) -> list[dict[str, Any]]:
        """This page's CDP events since it was opened."""
        return [e for e in self._cdp.events[self._since:] if e.get("sessionId") == self.session]

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (e.g. CSP violations)."""
        return problems_in(self.events())


def problems_in(events: list[dict[str, Any]], *, local_only: bool = False) -> list[str]:
    """Console errors, uncaught exceptions, error log entries and dialogs among ``events``;
    with ``local_only`` (the Network domain on) also every request that leaves the page's own
    file (a self-contained page makes none)."""
    found = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = [a.get("value", a.get("description")) for a in params.get("args", [])]
            found.append(f"console.{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append(f"exception: {(details.get('exception') or {}).get('description') or details}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            found.append(f"log: {params['entry'].get('text')} ({params['entry'].get('url')})")
        elif method == "Page.javascriptDialogOpening":
            found.append(f"dialog: {params.get('message')}")
        elif local_only and method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file://", "data:")):
                found.append(f"request: {url}")
    return found


class Browser:
    def __init__(self, connection: _Connection, stderr: list[str]) -> None:
        self._cdp = connection
        self.stderr = stderr

    async def new_page(self, width: int = 1100, height: int = 900, *, network: bool = False) -> Page:
        """A tab with the Page, Runtime and Log domains on (and Network with ``network``)."""
        target = (await self._cdp.call("Target.createTarget", url="about:blank"))["targetId"]
        attached = await self._cdp.call("Target.attachToTarget", targetId=target, flatten=True)
        page = Page(self._cdp, attached["sessionId"], width, height)
        for domain in ("Page", "Runtime", "Log", *(("Network",) if network else ())):
            await page.call(f"{domain}.enable")
        await page.resize(width, height)
        return page


async def _drain_stderr(stream: trio.abc.ReceiveStream, lines: list[str], *,
                        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    pending, reported = b"", False
    async for chunk in stream:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            line = raw.decode(errors="replace")
            lines.append(line)
            del lines[:-300]
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found and not reported:
                reported = True
                task_status.started(found.group(1))
    if not reported:
        raise RuntimeError("chromium exited before DevTools listened:\n" + "\n".join(lines[-30:]))


def _kill_group(process: trio.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@asynccontextmanager
async def launch_chromium(path: str, profile: Path, *, extra_flags: Sequence[str] = (),
                          start_timeout: float = 30.0) -> AsyncIterator[Browser]:
    process = await trio.lowlevel.open_process(
        [path, *BASE_FLAGS, f"--user-data-dir={profile}", *extra_flags, "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stderr: list[str] = []
    try:
        async with trio.open_nursery() as nursery:
            assert process.stderr is not None
            with trio.fail_after(start_timeout):
                url = await nursery.start(_drain_stderr, process.stderr, stderr)
            async with open_websocket_url(url, max_message_size=2**28, disconnect_timeout=5) as ws:
                connection = _Connection(ws)
                nursery.start_soon(connection.pump)
                yield Browser(connection, stderr)
            _kill_group(process)  # ends _drain_stderr
    finally:
        _kill_group(process)
        with trio.CancelScope(shield=True, deadline=trio.current_time() + 10) as waiting:
            await process.wait()
        if process.stderr is not None:
            with trio.CancelScope(shield=True):
                await process.stderr.aclose()
        if waiting.cancelled_caught:
            raise RuntimeError(f"chromium {process.pid} did not exit")
