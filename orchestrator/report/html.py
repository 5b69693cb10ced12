"""`render_report`: one self-contained HTML page for a run's ``results.json`` data.

The page has no script and loads nothing: styles are inline, charts are inline SVG built in
`figures`, and a Content-Security-Policy (``default-src 'none'``) makes the browser refuse
anything else, so the file can be mailed, archived or opened offline. Every text from the
results (scenario name, threshold reasons, error messages, the configuration) is escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Container, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from orchestrator.readout import format_observed, population_rows, reconnect_outcomes

from .figures import Figure, histogram_figures, ordered_histograms, time_figures
from .model import RunReport
from .svg import esc

__all__ = ["render_report", "render_sections", "format_ms", "format_duration", "CSP", "CSS"]

MAX_SESSION_ERRORS = 100
DASH = "\u2013"


def render_report(results: dict[str, Any]) -> str:
    """The report page for ``results`` (the ``results.json`` data, format 1).

    Raises `ReportError` when the results are of another format or malformed."""
    return _page(RunReport.from_results(results))


def render_sections(report: RunReport, *, live: bool = False) -> str:
    """The page's content (what goes inside ``<main>``); ``live``: a run still going, as the
    live page (`orchestrator.report.live`) shows it every second."""
    return "".join([
        _header(report, live=live),
        _cards(report),
        _thresholds(report),
        _checks(report),
        _latency_table(report),
        _usage(report),
        _populations(report),
        _rate_limits(report),
        _plots(report),
        _counters(report),
        _session_errors(report),
        _details(report),
    ])


# ---------------------------------------------------------------------------- formatting


def format_ms(seconds: float | None) -> str:
    """Seconds as milliseconds with three significant digits or more (``"812"``, ``"4.27"``)."""
    if seconds is None or not math.isfinite(seconds):
        return DASH if seconds is None else str(seconds)
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3g}"


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return DASH
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _format_number(value: float | None) -> str:
    if value is None:
        return DASH
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.6g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _format_time(unix: float | None) -> str:
    if unix is None or not math.isfinite(unix):
        return DASH
    try:
        return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return _format_number(unix)


def _format_observed(expression: str, observed: float | None) -> str:
    """The observed value as the terminal summary shows it (`results.format_observed`)."""
    if observed is None:
        return DASH
    return format_observed(expression, observed)


# ---------------------------------------------------------------------------- building blocks


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *,
           numeric: Container[int] = range(1, 99), cls: str = "") -> str:
    """Cells are HTML already (callers escape); the ``numeric`` columns align right."""
    head = "".join(
        f'<th{" class=num" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>" + "".join(
            f'<td{" class=num" if i in numeric else ""}>{cell}</td>' for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    c = f' class="{cls}"' if cls else ""
    return f"<table{c}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(figure: Figure) -> str:
    legend = "".join(
        f'<li><span class="swatch {item.style}" style="--c:{item.color}"></span>{esc(item.label)}</li>'
        for item in figure.legend
    )
    note = f'<span class="note">{esc(figure.note)}</span>' if figure.note else ""
    return (
        f'<figure class="plot" data-plot="{esc(figure.name)}">'
        f"<figcaption><h3>{esc(figure.title)}</h3>{note}</figcaption>"
        f"{figure.svg}"
        f'<ul class="legend">{legend}</ul></figure>'
    )


def _badge(verdict: str) -> str:
    cls = {"pass": "pass", "fail": "fail", "running": "running"}.get(verdict, "unknown")
    return f'<span class="badge {cls}">{esc(verdict.upper() or "NO VERDICT")}</span>'


def _section(title: str, body: str, *, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def _empty(text: str) -> str:
    return f'<p class="empty">{esc(text)}</p>'


# ---------------------------------------------------------------------------- sections


def _header(r: RunReport, *, live: bool = False) -> str:
    facts = [
        ("Target", r.target or DASH),
        ("Running for" if live else "Duration", format_duration(r.duration_s)),
        ("Started", _format_time(r.started_at)),
        *([] if live else [("Finished", _format_time(r.finished_at))]),
        ("Seed", DASH if r.seed is None else str(r.seed)),
        ("Scenario file", r.scenario_file or DASH),
        ("rtfleet", r.rtfleet_version or DASH),
    ]
    dl = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in facts)
    description = f'<p class="description">{esc(r.description)}</p>' if r.description else ""
    return (
        f'<header><p class="eyebrow">rtfleet {"live run" if live else "run report"}</p>'
        f'<h1><span class="name">{esc(r.scenario_name)}</span> {_badge(r.verdict)}</h1>'
        f"{description}<dl class=facts>{dl}</dl></header>"
    )


def _cards(r: RunReport) -> str:
    counters = r.metrics.counters
    cards = [
        ("sessions started", r.sessions_started),
        ("completed", r.sessions_completed),
        ("failed", r.sessions_failed),
    ]
    if r.sessions_stopped is not None:
        cards.append(("stopped", r.sessions_stopped))
    barge_ins = counters.get("turns.barged_in", 0) + counters.get("turns.barge_in_missed", 0)
    for name, label in (("turns.completed", "turns completed"), ("errors", "errors"),
                        ("turns.barged_in", "barge-ins"),
                        ("turns.barge_in_missed", "barge-ins that met no response"),
                        ("faults.injected", "faults injected")):
        if name in counters and (barge_ins or not name.startswith("turns.barge")):
            cards.append((label, counters[name]))
    if counters.get("rate_limited.connections"):
        cards.append(("connections refused (rate limit)", counters["rate_limited.connections"]))
    shown = [(label, esc(_format_number(value))) for label, value in cards]
    if "reconnect.attempts" in counters:
        r = reconnect_outcomes(counters)
        words = {"failed": "failed", "abandoned": "abandoned (session ended mid-outage)",
                 "open": "still reconnecting"}
        detail = [f"{r[k]:,} {words[k]}" for k in words if r[k]]
        label = "reconnects: succeeded / attempts (outages)"
        if detail:
            label += "; " + ", ".join(detail)
        shown.append((label, f"{r['succeeded']:,} / {r['outages']:,}"))
    bad = ("failed", "errors", "barge-ins that met no response", "connections refused (rate limit)")
    items = "".join(
        f'<div class="card{" bad" if label in bad and value not in ("0", DASH) else ""}">'
        f'<div class="value">{value}</div>'
        f'<div class="label">{esc(label)}</div></div>'
        for label, value in shown
    )
    return f'<div class="cards">{items}</div>'


def _thresholds(r: RunReport) -> str:
    if not r.thresholds:
        return _section("Thresholds", _empty("This scenario sets no thresholds."), anchor="thresholds")
    rows = [
        (
            f'<span class="status pass">pass</span>' if t.passed
            else '<span class="status fail">FAIL</span>',
            f"<code>{esc(t.expression)}</code>",
            esc(_format_observed(t.expression, t.observed)),
            esc(t.reason),
        )
        for t in r.thresholds
    ]
    failed = sum(not t.passed for t in r.thresholds)
    summary = f'<p>{len(r.thresholds) - failed} of {len(r.thresholds)} thresholds held.</p>'
    table = _table(["", "Threshold", "Observed", "Reason"], rows, numeric=(2,), cls="thresholds")
    return _section("Thresholds", summary + table, anchor="thresholds")


def _latency_table(r: RunReport) -> str:
    histograms = r.metrics.histograms
    if not histograms:
        return _section("Latency summary", _empty("No latencies were recorded."), anchor="latency")
    rows = []
    for name in ordered_histograms(list(histograms)):
        s = histograms[name].summary()
        rows.append([f"<code>{esc(name)}</code>", f"{s['count']:,}"]
                    + [esc(format_ms(s[k])) for k in ("p50", "p90", "p95", "p99", "max", "mean")])
    table = _table(["Histogram", "count", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms",
                    "mean ms"], rows)
    return _section("Latency summary", table, anchor="latency")


def _populations(r: RunReport) -> str:
    """The populations side by side (e.g. the same script over Realtime and GPT-Live)."""
    if len(r.populations) < 2:
        return ""
    headers, rows = population_rows(r.populations)
    cells = [[esc(cell) for cell in row] for row in rows]
    table = _table(headers, cells, numeric=tuple(range(3, len(headers))))
    note = ('<p class="hint">Each population\'s own sessions, turns, reconnects and turn '
            'latencies (first audio: turn start to the first audio; turn: to the answer\'s '
            'end).</p>')
    return _section("By population", note + table, anchor="populations")


#: the rate-limit counters, as the report names them
RATE_LIMITED = (("rate_limited.connections", "connections refused"),
                ("rate_limited.responses", "responses refused"),
                ("rate_limited.key_mints", "client-secret mints refused (429)"),
                ("admission.delayed", "sessions held by the admission gate"))


def _rate_limits(r: RunReport) -> str:
    """Refusals over the service's rate limits (their own category, not errors), the
    admission gate, and the limits the service last announced."""
    data = r.rate_limits if isinstance(r.rate_limits, dict) else {}
    counters = r.metrics.counters
    if not data and not any(counters.get(name) for name, _ in RATE_LIMITED):
        return ""
    rows = [(esc(label), f"<code>{esc(name)}</code>", esc(_format_number(counters.get(name, 0))))
            for name, label in RATE_LIMITED]
    parts = [_table(["", "Counter", "total"], rows, numeric=(2,))]
    admission = data.get("admission")
    if isinstance(admission, dict):
        ceiling = admission.get("max_concurrent")
        source = admission.get("max_concurrent_from")
        headroom = admission.get("headroom") or 0
        text = (f"Admission {'paced' if admission.get('pace') else 'not paced'}, headroom "
                f"{headroom * 100:g}%; concurrency limit "
                + (f"{ceiling} ({source})" if ceiling is not None else "unknown") + ".")
        parts.append(f"<p>{esc(text)}</p>")
    else:
        parts.append('<p class="hint">Admission not paced (no <code>rate_limits:</code> in the '
                     "scenario).</p>")
    seen = data.get("seen") if isinstance(data.get("seen"), dict) else {}
    limit_rows = []
    for where, named in sorted((seen.get("limits") or {}).items()):
        for name, reading in sorted(named.items()):
            limit_rows.append((esc(where.split("/", 1)[-1]), f"<code>{esc(name)}</code>",
                               esc(_format_number(reading.get("limit"))),
                               esc(_format_number(reading.get("remaining"))),
                               esc(_format_number(reading.get("reset_seconds")))))
    if limit_rows:
        parts.append("<p>The limits last announced (<code>rate_limits.updated</code>), by model:</p>")
        parts.append(_table(["Model", "Limit", "limit", "remaining", "reset s"], limit_rows,
                            numeric=(2, 3, 4)))
    return _section("Rate limits", "".join(parts), anchor="rate-limits")


def _plots(r: RunReport) -> str:
    over_time = "".join(_figure(f) for f in time_figures(r))
    distributions = histogram_figures(r)
    grid = ("<div class=plots-grid>" + "".join(_figure(f) for f in distributions) + "</div>"
            if distributions else _empty("No histogram has samples."))
    note = ('<p class="hint">All time plots share the run\'s time axis. Vertical lines: '
            'phase starts (dashed blue) and injected faults (purple); red ticks along the top '
            'of the reconnects plot: errors. Hover a line, a mark or a bar for details.</p>')
    return (_section("Over time", note + over_time, anchor="over-time")
            + _section("Latency distributions", grid, anchor="distributions"))


def _counters(r: RunReport) -> str:
    counters, gauges = r.metrics.counters, r.metrics.gauges
    duration = r.duration_s if r.duration_s and r.duration_s > 0 else None
    parts = []
    if counters:
        rows = [
            (f"<code>{esc(name)}</code>", esc(_format_number(value)),
             esc(_format_number(value / duration) if duration else DASH))
            for name, value in sorted(counters.items())
        ]
        parts.append(_table(["Counter", "total", "per second"], rows))
    else:
        parts.append(_empty("No counters were recorded."))
    if gauges:
        rows = [(f"<code>{esc(name)}</code>", esc(_format_number(value)))
                for name, value in sorted(gauges.items())]
        parts.append(_table(["Gauge", "at the end"], rows))
    return _section("Counters", '<div class="pair">' + "".join(parts) + "</div>", anchor="counters")


def _trail(lines: tuple[str, ...]) -> str:
    if not lines:
        return ""
    return ("<details><summary>last events</summary><pre>" + esc("\n".join(lines))
            + "</pre></details>")


def _usage(r: RunReport) -> str:
    """Tokens, spend and the budget, as the text summary says them (results.json ``usage``)."""
    from orchestrator.usage import format_usage

    line = format_usage(r.usage) if r.usage else ""
    if not line:
        return ""
    prices = (r.usage or {}).get("prices") or {}
    rows = [(esc(protocol), esc(p.get("model") or ""), esc("yes" if p.get("known") else "NO: cost unknown"),
             esc(p.get("as_of") or DASH), esc(p.get("source") or DASH)) for protocol, p in prices.items()]
    table = _table(["Protocol", "Model", "Priced", "Prices as of", "Source"], rows, numeric=())
    return _section("Usage and cost", f"<p>{esc(line.removeprefix('usage: '))}</p>" + table,
                    anchor="usage")


def _checks(r: RunReport) -> str:
    """The expect steps' checks, one row per population, step and check, failures first, each
    failure with the words actually said."""
    if not r.checks:
        return ""
    rows = []
    for c in sorted(r.checks, key=lambda c: (-(c.get("failed") or 0), str(c.get("population")),
                                             str(c.get("step")))):
        failed = int(c.get("failed") or 0)
        said = "".join(f"<div>{esc(str(f))}</div>" for f in c.get("failures") or ())
        verdict = '<span class="status fail">FAIL</span>' if failed else '<span class="status pass">pass</span>'
        rows.append((verdict, esc(str(c.get("population", ""))), f"<code>{esc(str(c.get('step', '')))}</code>",
                     f"<code>{esc(str(c.get('check', '')))}</code>", f"{int(c.get('passed') or 0):,}",
                     f"{failed:,}", said))
    failed = sum(int(c.get("failed") or 0) for c in r.checks)
    table = _table(["", "Population", "Step", "Check", "Passed", "Failed", "What was said (failures)"],
                   rows, numeric=(4, 5), cls="errors")
    return _section(f"Answer checks ({failed:,} failed)", table, anchor="checks")


def _session_errors(r: RunReport) -> str:
    errors = r.session_errors
    if not errors:
        return ""
    shown = errors[:MAX_SESSION_ERRORS]
    rows = [(f"<code>{esc(e.session)}</code>", esc(e.error) + _trail(e.trail)) for e in shown]
    more = (f"<p>\u2026 and {len(errors) - len(shown):,} more (see results.json).</p>"
            if len(errors) > len(shown) else "")
    table = _table(["Session", "Error"], rows, numeric=(), cls="errors")
    return _section(f"Session errors ({len(errors):,})", table + more, anchor="errors")


def _details(r: RunReport) -> str:
    parts = []
    if r.marks:
        rows = [(esc(f"{m.t:.1f}"), esc(m.kind), esc(m.label)) for m in r.marks]
        parts.append("<details><summary>Marks (" + f"{len(r.marks):,}" + ")</summary>"
                     + _table(["t (s)", "kind", "label"], rows, numeric=(0,)) + "</details>")
    if r.config is not None:
        text = json.dumps(r.config, indent=2, ensure_ascii=False, default=str)
        parts.append("<details><summary>Scenario configuration</summary>"
                     f"<pre>{esc(text)}</pre></details>")
    return _section("Details", "".join(parts), anchor="details") if parts else ""


# ---------------------------------------------------------------------------- page

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#fff;--panel:#f9fafb;
--pass:#15803d;--fail:#b91c1c}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:2px 0 6px;display:flex;align-items:center;gap:12px;flex-wrap:wrap}
h1 .name{overflow-wrap:anywhere}
h2{font-size:18px;margin:32px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:0}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:var(--panel);border:1px solid var(--line);padding:12px;overflow:auto;max-height:480px}
.eyebrow{margin:0;color:var(--muted);text-transform:uppercase;letter-spacing:.08em;font-size:11px}
.description{margin:0 0 10px;color:#374151}
.badge{font-size:13px;font-weight:700;letter-spacing:.06em;padding:3px 10px;border-radius:999px;
color:#fff;background:#6b7280}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}
.badge.running{background:#2563eb}
dl.facts{display:flex;flex-wrap:wrap;gap:6px 28px;margin:8px 0 0}
dl.facts div{min-width:0}dt{color:var(--muted);font-size:11px;text-transform:uppercase;
letter-spacing:.05em}dd{margin:0;overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:20px 0 0}
.card{border:1px solid var(--line);background:var(--panel);border-radius:8px;padding:8px 14px;
min-width:120px}
.card .value{font-size:20px;font-weight:650;font-variant-numeric:tabular-nums}
.card .label{color:var(--muted);font-size:12px}
.card.bad .value{color:var(--fail)}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;background:var(--panel)}
td.num,th.num{text-align:right}
tbody tr:nth-child(even){background:#fcfcfd}
table.errors td:last-child,table.thresholds td:last-child{overflow-wrap:anywhere;max-width:560px}
.status{font-weight:700;font-size:12px;padding:1px 8px;border-radius:4px;color:#fff}
.status.pass{background:var(--pass)}.status.fail{background:var(--fail)}
.pair{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.empty,.hint{color:var(--muted)}
.hint{font-size:12.5px;margin:0 0 8px}
figure.plot{margin:0 0 18px;border:1px solid var(--line);border-radius:8px;padding:10px 12px 6px;
background:#fff}
figcaption{display:flex;align-items:baseline;gap:12px;margin-bottom:4px}
figcaption .note{color:var(--muted);font-size:12px}
svg.chart{display:block;width:100%;height:auto;font-family:inherit}
.plots-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:0 16px}
svg .gridlines line{stroke:#eef0f3}
svg .axis line{stroke:#9ca3af}
svg .tick{font-size:11px;fill:#4b5563}
svg .axis-label{font-size:12px;fill:#1f2937}
svg .mark-label{font-size:11px;font-weight:600;paint-order:stroke;stroke:#fff;stroke-width:3px;
stroke-linejoin:round}
svg .no-data{font-size:14px;fill:#9ca3af}
svg .bars rect{fill:#4c78a8}
svg .bars rect:hover{fill:#2b5a8a}
svg .band{fill-opacity:.8;stroke-width:.6}
ul.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 16px;margin:4px 0 2px;padding:0;
font-size:12px;color:#374151}
.swatch{display:inline-block;width:14px;height:10px;margin-right:6px;vertical-align:-1px;
background:var(--c)}
.swatch.line,.swatch.dash{height:0;background:none;border-top:2px solid var(--c);vertical-align:3px}
.swatch.dash{border-top-style:dashed}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
footer{margin-top:40px;color:var(--muted);font-size:12px}
"""


def _page(r: RunReport) -> str:
    verdict = r.verdict.upper() or "NO VERDICT"
    body = render_sections(r)
    footer = (f"<footer>Generated by rtfleet {esc(r.rtfleet_version or '')} from results.json "
              "(format 1). Times in milliseconds unless marked.</footer>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(r.scenario_name)} \u2014 rtfleet report ({esc(verdict)})</title>"
        f"<style>{CSS}</style></head>"
        f"<body><main>{body}{footer}</main></body></html>\n"
    )
