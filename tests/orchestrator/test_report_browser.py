"""The report in a real browser: headless Chromium, driven over the Chrome DevTools Protocol.

Why raw CDP rather than Playwright: it needs no extra Python package (the Playwright package
brings a Node driver and wants to manage its own browser builds), it runs natively in trio under
pytest-trio, and the few commands used here (create a page, navigate, evaluate, screenshot,
collect console/log/exception/network events) are a stable core of the protocol. The browser
plumbing is ``tests/browser_cdp.py`` (shared with the demo page's browser test).

Chromium comes from Debian (``apt-get install chromium``). Without it this test skips, unless
``RTFLEET_REQUIRE_BROWSER`` is set (CI sets it), when it fails. ``RTFLEET_CHROMIUM`` names
another binary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from orchestrator.report import write_report

from tests.browser_cdp import chromium_or_skip, launch_chromium, problems_in

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results-sample.json"
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
    return chromium_or_skip()


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

    with trio.fail_after(90):
        async with launch_chromium(chromium, tmp_path / "profile") as browser:
            page = await browser.new_page(1280, 900, network=True)

            events = await page.navigate(sample.as_uri())
            assert problems_in(events, local_only=True) == []
            plots = {p["name"]: p for p in await page.evaluate(PLOTS_JS)}
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
            width, height = await page.screenshot(tmp_path / "report.png", full_page=True)
            assert width == 1280 and height > 2000
            print(f"screenshot: {tmp_path / 'report.png'}")

            events = await page.navigate(empty.as_uri())
            assert problems_in(events, local_only=True) == []
            plots = {p["name"]: p for p in await page.evaluate(PLOTS_JS)}
            assert {"sessions", "events", "throughput"} <= set(plots)
            assert all(p["width"] > 300 and p["height"] > 150 for p in plots.values())
            await page.screenshot(tmp_path / "report-empty.png", full_page=True)

            events = await page.navigate(hostile.as_uri())
            assert problems_in(events, local_only=True) == []
            found = await page.evaluate(
                "[document.scripts.length, document.images.length, document.title,"
                " document.querySelector('h1 .name').textContent]")
            assert found[:2] == [0, 0]
            assert found[2].startswith(HOSTILE) and found[3] == HOSTILE
