"""render_report: the page's content, its plots, escaping and robustness (no browser)."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from orchestrator.metrics import Histogram, MetricsRegistry, TimeSeries
from orchestrator.report import ReportError, render_report
from orchestrator.report.figures import histogram_bars
from orchestrator.report.html import format_duration, format_ms
from orchestrator.report.svg import format_tick, linear_ticks, log_ticks, nice_ceiling

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results-sample.json"
SVG_NS = "{http://www.w3.org/2000/svg}"
TIME_PLOTS = {"sessions", "events", "throughput", "percentiles:turn.time_to_first_text",
              "percentiles:turn.time_to_first_audio", "percentiles:turn.duration"}
EMPTY_TIME_PLOTS = {"sessions", "events", "throughput", "percentiles:turn.duration"}
SAMPLE_HISTOGRAMS = {"turn.time_to_first_text", "turn.time_to_first_audio", "turn.duration",
                     "connect.duration", "reconnect.duration", "audio.frame_lateness"}
EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>&amp;'


@pytest.fixture
def sample() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _plots(page: str) -> dict[str, str]:
    found = re.findall(r'<figure class="plot" data-plot="([^"]+)">(.*?)</figure>', page, re.S)
    return dict(found)


class _Tags(HTMLParser):
    """Start tags and attributes of a page, parsed the way a browser tokenizes them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _tags(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


def _svg_roots(page: str) -> list[ET.Element]:
    return [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, re.S)]


def test_sample_has_every_section_and_plot(sample: dict[str, Any]) -> None:
    page = render_report(sample)
    assert page.startswith("<!DOCTYPE html>")
    plots = _plots(page)
    assert set(plots) == TIME_PLOTS | {f"histogram:{name}" for name in SAMPLE_HISTOGRAMS}
    for section in ("thresholds", "latency", "over-time", "distributions", "counters", "errors",
                    "details"):
        assert f'<section id="{section}">' in page
    assert '<span class="badge fail">FAIL</span>' in page
    assert "<title>chaos-reconnect \u2014 rtfleet report (FAIL)</title>" in page
    assert "1 min 59 s" in page  # duration
    # a failed threshold is marked, with its reason
    assert '<span class="status fail">FAIL</span></td><td><code>sessions.failed == 0</code>' in page
    assert "sessions.failed = 1, FAILED: == 0" in page
    # the latency table has a row per histogram, in ms
    for name in SAMPLE_HISTOGRAMS:
        assert f"<td><code>{name}</code></td>" in page


def test_every_plot_has_a_title_axes_ticks_and_units(sample: dict[str, Any]) -> None:
    plots = _plots(render_report(sample))
    for name, body in plots.items():
        assert re.search(r"<h3>[^<]+</h3>", body), name
        svg = ET.fromstring(re.search(r"<svg .*?</svg>", body, re.S).group(0))
        assert svg.find(f"{SVG_NS}title").text, name
        ticks = [t.text for t in svg.iter(f"{SVG_NS}text") if t.get("class") == "tick"]
        assert len(ticks) >= 4, name
        labels = [t.text for t in svg.iter(f"{SVG_NS}text") if t.get("class") == "axis-label"]
        assert len(labels) == 2, name
        if name.startswith(("percentiles:", "histogram:")):
            assert any("ms" in label for label in labels), (name, labels)
        else:
            assert "time since start (s)" in labels, (name, labels)


def test_time_plots_show_marks_with_labels(sample: dict[str, Any]) -> None:
    plots = _plots(render_report(sample))
    events = plots["events"]
    for label in ("drop_connections 50%", "expire_keys", "steady: hold"):
        assert f">{label}</text>" in events
    # near the right edge, after the 95 s mark: cut to end at its own line, whole in the tooltip
    assert ">kill_server, re" in events and "kill_server, restart after 2s</title>" in events
    # errors are marks too (short ticks with a tooltip), but only on the events plot
    assert "s-13: gave up after 6 reconnect attempts" in events
    assert "s-13: gave up" not in plots["sessions"]
    assert ">drop_connections 50%</text>" in plots["percentiles:turn.duration"]


def test_page_is_self_contained(sample: dict[str, Any]) -> None:
    page = render_report(sample)
    tags = _tags(page)
    assert not [t for t, _ in tags.tags if t in ("script", "iframe", "object", "embed", "img")]
    for tag, attrs in tags.tags:
        for key in ("src", "href", "xlink:href", "action", "srcset"):
            value = attrs.get(key)
            assert value is None or value.startswith("data:"), (tag, key, value)
    assert "url(" not in page and "@import" not in page
    csp = next(a["content"] for t, a in tags.tags if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_every_svg_is_well_formed_xml(sample: dict[str, Any]) -> None:
    sample["scenario"]["name"] = EVIL
    sample["marks"].append({"t": 3.0, "kind": "fault", "label": EVIL})
    roots = _svg_roots(render_report(sample))
    assert len(roots) == 12
    texts = [e.text or "" for root in roots for e in root.iter()]
    assert any(EVIL in text for text in texts)  # a title (tooltip) has the whole label
    assert any(EVIL[:20] in text for root in roots for text in
               (e.text or "" for e in root.iter(f"{SVG_NS}text")))  # the label, shortened


def test_untrusted_text_is_escaped_everywhere(sample: dict[str, Any]) -> None:
    sample["scenario"].update(name=EVIL, description=EVIL, file=EVIL, config={"say": EVIL, EVIL: 1})
    sample["target"] = EVIL
    sample["rtfleet_version"] = EVIL
    sample["thresholds"].append({"expression": EVIL, "observed": None, "passed": False,
                                 "reason": EVIL})
    sample["marks"] += [{"t": 1.0, "kind": kind, "label": EVIL} for kind in ("phase", "fault", "error", EVIL)]
    sample["sessions"]["errors"].append({"session": EVIL, "error": EVIL})
    page = render_report(sample)
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&amp;amp;" in page  # an ampersand in the data is escaped, not taken as an entity
    tags = _tags(page)
    assert not [a for _, a in tags.tags if any(k.startswith("on") for k in a)]
    # the browser's view of the text is the original string
    assert sum(EVIL in chunk for chunk in tags.text) >= 8


def test_empty_run_renders() -> None:
    page = render_report({"format": 1})
    plots = _plots(page)
    assert set(plots) == EMPTY_TIME_PLOTS
    assert "No histogram has samples." in page
    assert "This scenario sets no thresholds." in page
    assert "No latencies were recorded." in page
    assert "(unnamed scenario)" in page
    assert "NO VERDICT" in page
    assert "no data recorded" in plots["sessions"]
    assert "no turn.duration samples" in plots["percentiles:turn.duration"]
    assert len(_svg_roots(page)) == len(EMPTY_TIME_PLOTS)


def test_empty_containers_render() -> None:
    results = {
        "format": 1, "scenario": {"name": "idle", "config": {}}, "verdict": "pass",
        "target": "embedded", "duration_s": 0.0, "started_at": 1.7e9, "finished_at": 1.7e9,
        "thresholds": [], "metrics": MetricsRegistry().snapshot(),
        "timeline": TimeSeries().snapshot(), "marks": [],
        "sessions": {"started": 0, "completed": 0, "failed": 0, "errors": []},
    }
    page = render_report(results)
    assert set(_plots(page)) == EMPTY_TIME_PLOTS
    assert '<span class="badge pass">PASS</span>' in page
    assert '<div class="label">stopped</div>' not in page
    results["sessions"]["stopped"] = 20  # the runner also counts sessions it stopped
    assert '<div class="value">20</div><div class="label">stopped</div>' in render_report(results)


def test_any_metric_may_be_absent(sample: dict[str, Any]) -> None:
    """Only a reconnect histogram and a gauge in one slot: every plot still renders."""
    registry = MetricsRegistry()
    registry.observe("reconnect.duration", 0.8)
    registry.histogram("turn.duration")  # declared, never recorded
    series = TimeSeries()
    series.set_gauge("sessions.connected", 3, now=4.5)
    results = {"format": 1, "metrics": registry.snapshot(), "timeline": series.snapshot(),
               "duration_s": 9.0, "marks": [{"t": 2.0, "kind": "phase", "label": "hold"}]}
    page = render_report(results)
    plots = _plots(page)
    assert set(plots) == EMPTY_TIME_PLOTS | {"histogram:reconnect.duration"}
    assert "no data recorded" not in plots["sessions"]  # 3 connected from 4 s on
    assert "no reconnects, errors or faults" in plots["events"]
    row = re.search(r"<td><code>turn.duration</code></td>(.*?)</tr>", page).group(1)
    assert row.count("\u2013") == 6  # count 0, every statistic a dash


def test_unusual_values_render() -> None:
    registry = MetricsRegistry()
    for value in (0.0, 0.0, 1e-7, 5000.0):  # underflow, tiny and overflow buckets
        registry.observe("weird", value)
    registry.observe("one", 0.25)
    results = {
        "format": 1, "metrics": registry.snapshot(), "verdict": "maybe", "duration_s": 7200.0,
        "thresholds": [{"expression": "x > 1", "observed": float("nan"), "passed": False,
                        "reason": "x is NaN"},
                       {"expression": "rate >= 99%", "observed": 0.981, "passed": False,
                        "reason": ""}],
        "marks": [{"t": 1e6, "kind": "fault", "label": "x" * 500}],
    }
    page = render_report(results)
    assert {"histogram:weird", "histogram:one"} <= set(_plots(page))
    assert "98.1%" in page and ">nan<" in page  # as the terminal summary writes it
    assert "MAYBE" in page and "2 h 0 min" in page
    _svg_roots(page)


def test_only_recorded_turn_latencies_get_percentile_plots() -> None:
    series = TimeSeries()
    for t in (0.5, 2.5, 3.5, 9.5):  # lockstep turns leave seconds without samples
        series.observe("turn.time_to_first_text", 0.2, now=t)
    series.inc("sessions.completed", now=3.5, amount=3)
    series.inc("sessions.stopped", now=9.5)
    plots = _plots(render_report({"format": 1, "timeline": series.snapshot()}))
    assert {name for name in plots if name.startswith("percentiles:")} == {
        "percentiles:turn.time_to_first_text"}
    body = plots["percentiles:turn.time_to_first_text"]
    svg = ET.fromstring(re.search(r"<svg .*?</svg>", body, re.S).group(0))
    paths = list(svg.iter(f"{SVG_NS}path"))
    dots = list(svg.iter(f"{SVG_NS}circle"))
    # 0.5 -> 2.5 -> 3.5 is one line (a 1 s gap is bridged); 9.5 is after a 5 s gap: a dot
    assert len(paths) == 3 and len(dots) == 3  # one of each per percentile
    # sessions that ended, cumulative: 3 from the 4th second, 4 in the last
    assert "ended so far (completed + failed + stopped; not stacked)" in plots["sessions"]


def test_rendering_is_deterministic(sample: dict[str, Any]) -> None:
    assert render_report(sample) == render_report(copy.deepcopy(sample))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 2}, "unsupported results format 2"),
        ({"format": None}, "unsupported results format None"),
        ({"scenario": "chaos"}, "results.scenario: expected an object, got 'chaos'"),
        ({"thresholds": {}}, "results.thresholds: expected a list"),
        ({"thresholds": [{"expression": "a < 1", "passed": "yes"}]},
         "results.thresholds[0].passed: expected true or false, got 'yes'"),
        ({"duration_s": "12s"}, "results.duration_s: expected a number"),
        ({"marks": [{"kind": "fault"}]}, "results.marks[0].t: expected a number of seconds"),
        ({"metrics": {"histograms": {"x": {"v": 9}}}},
         "results.metrics: unsupported histogram format"),
        ({"metrics": {"counters": [1]}}, "results.metrics.counters: expected an object"),
        ({"timeline": {"interval": 0, "slots": []}}, "results.timeline.interval: expected seconds > 0"),
        ({"timeline": {"interval": 1, "slots": [[0.5, {}]]}},
         "results.timeline.slots[0]: expected [slot index, metrics snapshot]"),
        ({"sessions": {"started": 1.5}}, "results.sessions.started: expected a whole number"),
        ({"timeline": {"interval": 1, "slots": [[0, {}], [10**9, {}]]}},
         "results.timeline.slots: spans more than 604,800 slots"),
    ],
)
def test_malformed_results_raise_report_error(change: dict[str, Any], message: str) -> None:
    results = {"format": 1, **change}
    with pytest.raises(ReportError) as info:
        render_report(results)
    assert message in str(info.value)


@pytest.mark.parametrize("results", [None, [], "results", 1])
def test_results_must_be_an_object(results: Any) -> None:
    with pytest.raises(ReportError, match="results: expected an object"):
        render_report(results)


# ---------------------------------------------------------------------------- helpers


def test_format_ms() -> None:
    assert [format_ms(v) for v in (None, 0.0, 0.00042, 0.0042, 0.042, 0.4213, 4.2)] == [
        "\u2013", "0", "0.42", "4.20", "42.0", "421", "4,200"]


def test_format_duration() -> None:
    assert [format_duration(v) for v in (None, 0.0, 59.94, 118.4, 3600.0)] == [
        "\u2013", "0.0 s", "59.9 s", "1 min 58 s", "1 h 0 min"]


def test_linear_ticks() -> None:
    assert linear_ticks(0, 117.84, 10) == [0, 20, 40, 60, 80, 100]
    assert linear_ticks(0, 90, 10) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert linear_ticks(0, 1, 5) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert linear_ticks(0, 2, 5, integer=True) == [0, 1, 2]
    assert nice_ceiling(37) == 40 and nice_ceiling(0) == 1 and nice_ceiling(0.3, integer=True) == 1


def test_log_ticks() -> None:
    assert log_ticks(0.15, 110) == [0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
    assert log_ticks(1e-4, 1e4)[:3] == [1e-4, 1e-3, 1e-2]
    narrow = log_ticks(40, 60)
    assert len(narrow) >= 3 and all(40 <= t <= 60 for t in narrow)


def test_format_tick() -> None:
    assert [format_tick(v) for v in (0, 0.25, 2.5, 1000, 12000, 0.001)] == [
        "0", "0.25", "2.5", "1,000", "12,000", "0.001"]


@pytest.mark.parametrize("values", [[0.2], [0.0, 0.5, 1.5], [1e-6 * 1.3**i for i in range(80)],
                                    [0.1 + 0.0001 * i for i in range(100)]])
def test_histogram_bars_keep_every_sample(values: list[float]) -> None:
    h = Histogram.from_values(values)
    bars = histogram_bars(h)
    assert sum(bar.count for bar in bars) == h.count
    assert len(bars) <= 48
    assert all(a.hi <= b.lo for a, b in zip(bars, bars[1:]))
    assert all(0 < bar.lo < bar.hi for bar in bars)
    assert histogram_bars(Histogram()) == []


def test_a_mark_label_is_beside_its_own_line() -> None:
    """Each label starts (or, at the right edge, ends) at its own line; a label that ends at its
    line spans no other line (it would start beside that one), and no line crosses a label."""
    from orchestrator.report import svg as S

    marks = [S.VMark(t, label, label, "#7c3aed") for t, label in (
        (20.0, "drop_connections(percent=50)"), (24.0, "expire_keys"),
        (95.0, "add_latency(ms=250, duration=10)"), (110.0, "kill_server(restart_after=2)"))]
    chart = ET.fromstring(S.line_chart("t", [], x_max=120, x_label="x", y_label="y", marks=marks))
    lines = [(float(line.get("x1")), float(line.get("y1"))) for line in chart.iter(f"{SVG_NS}line")
             if line.get("stroke") == "#7c3aed"]
    assert len(lines) == 4
    texts = [t for t in chart.iter(f"{SVG_NS}text") if t.get("class") == "mark-label"]
    assert len(texts) == 4
    for text in texts:
        x, y, n = float(text.get("x")), float(text.get("y")), len(text.text)
        start = text.get("text-anchor") == "start"
        left, right = (x, x + n * S.CHAR_WIDTH) if start else (x - n * S.CHAR_WIDTH, x)
        own = x - 3 if start else x + 3
        assert any(abs(own - lx) < 0.01 for lx, _ in lines), text.text
        spanned = [(lx, top) for lx, top in lines if left <= lx <= right]
        if not start:
            assert not spanned, text.text
        assert all(top > y for _, top in spanned), text.text  # lines stop below the label
    shown = {t.text: t.get("text-anchor") for t in texts}
    assert shown["drop_connections(percent=50)"] == "start"
    # at the right edge, between the 95 s line and its own: cut, ending at its own line
    kill = next(t for t in shown if t.startswith("kill_server"))
    assert shown[kill] == "end" and kill.endswith("\u2026")
