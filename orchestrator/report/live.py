"""`LivePage`: the local page ``rtfleet run --ui PORT`` serves while a run goes.

::

    page = LivePage(scrub=redact)
    url = await nursery.start(page.serve, "127.0.0.1", 0)   # "http://127.0.0.1:PORT/"
    result = await run_scenario(..., on_live=page.attach)     # the results so far, on demand
    page.finish(result.results)                               # "/" is the final report now

Routes (GET only)::

    /            while the run goes: the report's sections, rendered from the results so far,
                 and one inline script that polls /state.json every second and swaps the
                 fresh sections in; once the run has ended: the final report.html itself
    /state.json  {"state": "starting" | "running" | "done", "version", "t", "counters",
                 "html"}: ``html`` is what goes inside <main> (absent when done)

The page follows report.html's rules: self-contained, nothing loaded from anywhere, a strict
Content-Security-Policy (header) that allows the one script by its SHA-256 hash (never
'unsafe-inline' for scripts) and ``connect-src 'self'`` for its polls. Rendering is
`html.render_sections` over `RunReport.from_results`, the report's own code; the results so far
come from the runner's `build_results` (``"verdict": "running"``). Every text served passes
through ``scrub`` (the CLI gives one that redacts key-like strings and the run's API key).

Cost to the run: the results are built on the run's event loop (plain-data snapshots), the
HTML in a worker thread; one rendering serves every poll for at least a second, and for longer
when rendering is slow (at least ten times its cost apart), so a page left open on an hours-long
run takes a bounded share of the process. Nothing is rendered while nobody looks.

Bound to a loopback address, the server answers only requests whose ``Host`` names a loopback
address (a web page elsewhere cannot read it through DNS rebinding); ``--ui-host`` binds
elsewhere as an explicit opt-in, and then any ``Host`` is answered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any, Awaitable, Callable

import attrs

from orchestrator.loopback import is_loopback
import trio

from standin.front.lean import serve_front

from .html import CSP as REPORT_CSP
from .html import CSS, render_report, render_sections
from .model import RunReport

__all__ = ["LivePage", "POLL_SECONDS", "PAGE_CSP", "REPORT_HEADER_CSP"]

#: how often the page asks for fresh state
POLL_SECONDS = 1.0
#: renderings are at least this many times their own cost apart
RENDER_SHARE = 10

SCRIPT = """"use strict";
(() => {
  const main = document.querySelector("main");
  const status = document.getElementById("live-status");
  let version = -1;
  const show = (text, cls) => { status.textContent = text; status.className = cls; };
  async function poll() {
    try {
      const response = await fetch("state.json", {cache: "no-store"});
      if (!response.ok) throw new Error("HTTP " + response.status);
      const state = await response.json();
      if (state.state === "done") { location.reload(); return; }
      if (state.html && state.version !== version) {
        version = state.version;
        const open = Array.from(main.querySelectorAll("details"), (d) => d.open);
        main.innerHTML = state.html;
        main.querySelectorAll("details").forEach((d, i) => { d.open = Boolean(open[i]); });
      }
      show(state.state === "running"
        ? "live: " + state.t.toFixed(1) + " s into the run, updated "
          + new Date().toLocaleTimeString()
        : "starting the run\\u2026", "ok");
    } catch (error) {
      show("no answer from rtfleet (" + error.message + "): the run has ended and its "
        + "process exited, or it is busy. The final report is report.html in the run's "
        + "--out directory.", "lost");
    }
    setTimeout(poll, %d);
  }
  poll();
})();
""" % round(POLL_SECONDS * 1000)

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
_LOCKED = "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
PAGE_CSP = (f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; connect-src 'self'; "
            f"style-src 'unsafe-inline'; img-src data:; {_LOCKED}")
#: the final report, served: its own meta policy, and the same as a header
REPORT_HEADER_CSP = f"{REPORT_CSP}; {_LOCKED}"

LIVE_CSS = """
#live-status{position:sticky;top:0;z-index:1;margin:0;padding:6px 28px;font-size:12.5px;
background:#eff6ff;color:#1e3a8a;border-bottom:1px solid #bfdbfe}
#live-status.lost{background:#fef2f2;color:#991b1b;border-color:#fecaca}
"""

Send = Callable[[dict[str, Any]], Awaitable[None]]


@attrs.define(eq=False)
class LivePage:
    """What the page shows: nothing yet, the results so far (`attach`), or the end (`finish`)."""

    #: applied to every text served (redacts secrets)
    scrub: Callable[[str], str] = lambda text: text
    #: set once a browser has loaded the final report (``--ui-linger`` ends early then)
    final_seen: trio.Event = attrs.field(factory=trio.Event)
    _snapshot: Callable[[], dict[str, Any]] | None = attrs.field(default=None, init=False)
    _final: dict[str, Any] | None = attrs.field(default=None, init=False)
    _final_page: str | None = attrs.field(default=None, init=False)
    _state: dict[str, Any] = attrs.field(factory=lambda: {"state": "starting", "version": 0},
                                         init=False)
    _next_render: float = attrs.field(default=-float("inf"), init=False)
    _lock: trio.Lock = attrs.field(factory=trio.Lock, init=False)
    _loopback_only: bool = attrs.field(default=True, init=False)
    _port: int = attrs.field(default=0, init=False)

    def attach(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        """The run is under way: ``snapshot()`` returns its results so far."""
        self._snapshot = snapshot
        self._next_render = -float("inf")

    def finish(self, results: dict[str, Any]) -> None:
        """The run has ended: "/" serves its report from now on (rendered when first asked)."""
        self._final = results
        self._snapshot = None

    async def serve(self, host: str, port: int, *,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the page on ``host:port`` until cancelled; ``started("http://host:port/")``.
        A port in use raises OSError before anything is served."""
        self._loopback_only = is_loopback(host)
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_front, self._app, host, port)
            self._port = int(url.rsplit(":", 1)[1])
            task_status.started(url + "/")

    async def linger(self, seconds: float, stop: trio.Event) -> None:
        """Keep serving the final report until a browser has loaded it, ``stop`` is set or
        ``seconds`` have passed, whichever comes first."""
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                for event in (self.final_seen, stop):
                    nursery.start_soon(_cancel_when_set, event, nursery.cancel_scope)

    # -- state -----------------------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        """What /state.json answers; rendered afresh at most once a second (see the module)."""
        if self._final is not None:
            return {"state": "done", "version": self._state["version"] + 1}
        async with self._lock:
            snapshot = self._snapshot
            now = trio.current_time()
            if snapshot is not None and now >= self._next_render:
                started = time.perf_counter()
                results = snapshot()  # on the loop: the run's state, copied as plain data
                html = await trio.to_thread.run_sync(_render, results)
                cost = time.perf_counter() - started
                self._next_render = now + max(POLL_SECONDS * 0.9, RENDER_SHARE * cost)
                counters = results.get("summary", {}).get("counters", {})
                self._state = {"state": "running", "version": self._state["version"] + 1,
                               "t": round(float(results.get("duration_s") or 0.0), 1),
                               "counters": counters, "html": self.scrub(html)}
            return self._state

    async def _final_report(self) -> bytes:
        """The run's report.html (the same page), rendered once, in a worker thread."""
        async with self._lock:
            if self._final_page is None:
                assert self._final is not None
                page = await trio.to_thread.run_sync(render_report, self._final)
                self._final_page = self.scrub(page)
            return self._final_page.encode()

    def _page(self) -> str:
        return ("<!DOCTYPE html>\n"
                '<html lang="en"><head><meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                '<link rel="icon" href="data:,">'
                "<title>rtfleet live run</title>"
                f"<style>{CSS}{LIVE_CSS}</style></head><body>"
                '<p id="live-status" class="ok">waiting for the run\u2026</p>'
                '<main><p class="empty">The run is starting; its report appears here.</p></main>'
                f"<script>{SCRIPT}</script></body></html>\n")

    # -- HTTP ------------------------------------------------------------------------------

    async def _app(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":  # a WebSocket upgrade: refused (403)
            await send({"type": "websocket.close", "code": 1008})
            return
        if self._loopback_only and not _loopback_host(_header(scope, b"host"), self._port):
            await _reply(send, 403, "text/plain", b"this page answers only to its loopback address")
            return
        if scope["method"] != "GET":
            await _reply(send, 405, "text/plain", b"GET only", allow=b"GET")
            return
        path = scope["path"]
        if path == "/":
            if self._final is not None:
                await _reply(send, 200, "text/html; charset=utf-8", await self._final_report(),
                             csp=REPORT_HEADER_CSP)
                self.final_seen.set()
            else:
                await _reply(send, 200, "text/html; charset=utf-8", self._page().encode(),
                             csp=PAGE_CSP)
        elif path == "/state.json":
            body = json.dumps(await self.state(), separators=(",", ":"), default=str).encode()
            await _reply(send, 200, "application/json", body)
        else:
            await _reply(send, 404, "text/plain", b"not found")


def _render(results: dict[str, Any]) -> str:
    return render_sections(RunReport.from_results(_whole_slots(results)), live=True)


def _whole_slots(results: dict[str, Any]) -> dict[str, Any]:
    """The results with the timeline cut to the slots that are over: the second the run is
    in has only begun, and would plot as a dip at the end of every rate (the totals, cards and
    tables, keep everything)."""
    timeline = results.get("timeline") or {}
    slots = timeline.get("slots")
    if not slots:
        return results
    elapsed = float(results.get("duration_s") or 0.0)
    origin, interval = timeline.get("origin", 0.0), timeline["interval"]
    over = [slot for slot in slots if origin + (slot[0] + 1) * interval <= elapsed]
    return {**results, "timeline": {**timeline, "slots": over}}


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _reply(send: Send, status: int, content_type: str, body: bytes, *,
                 csp: str = "default-src 'none'; " + _LOCKED, allow: bytes | None = None) -> None:
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode()),
               (b"content-security-policy", csp.encode()),
               (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"no-referrer"),
               (b"cache-control", b"no-store")]
    if allow is not None:
        headers.append((b"allow", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""




def _loopback_host(host: str, port: int) -> bool:
    """Whether a ``Host`` header names a loopback address (with our port, or none)."""
    if host.startswith("["):  # [v6]:port
        name, _, rest = host[1:].partition("]")
        if rest and not rest.startswith(":"):
            return False
        given = rest[1:]
    else:
        name, _, given = host.partition(":")
    if given and given != str(port):
        return False
    return is_loopback(name)
