"""Inline SVG charts for the HTML report: plain strings, no JavaScript, no external files.

Three chart kinds, each a self-contained ``<svg>`` with a ``<title>``, gridlines, axes with
tick labels and axis titles:

* `line_chart`: series of ``(x, y | None)`` points on a linear time axis (a None breaks the
  line; an isolated point is drawn as a dot), with optional vertical marks whose labels are
  stacked in rows above the plot so that close marks do not overwrite each other.
* `stacked_steps_chart`: levels held over fixed slots, stacked (sessions by state).
* `histogram_chart`: bars on a logarithmic x axis with labelled percentile markers.

Every text that reaches the output goes through `esc`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

import attrs

__all__ = [
    "Scale", "Frame", "Line", "Layer", "VMark", "Bar",
    "line_chart", "stacked_steps_chart", "histogram_chart",
    "linear_ticks", "log_ticks", "nice_ceiling", "format_tick", "esc",
]

CHAR_WIDTH = 7.0  # generous width of one character of a bold 11 px label
ROW_HEIGHT = 13  # one row of mark labels above the plot
MAX_LABEL_ROWS = 4
MAX_LABEL_CHARS = 36


def esc(text: object) -> str:
    """Text or attribute value, escaped for HTML and inline SVG alike."""
    return html.escape(str(text), quote=True)


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


@attrs.frozen
class Scale:
    """Maps ``[lo, hi]`` of the data onto ``[start, end]`` pixels, linearly or by log10."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        lo, hi, v = self.lo, self.hi, value
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(max(v, self.lo * 1e-3))
        fraction = (v - lo) / (hi - lo) if hi != lo else 0.5
        return self.start + fraction * (self.end - self.start)


@attrs.frozen
class Frame:
    """Outer size and margins; the plot area is what the margins leave."""

    width: float
    height: float  # of the plot area
    left: float = 66
    right: float = 22
    top: float = 14
    bottom: float = 44

    @property
    def total_height(self) -> float:
        return self.top + self.height + self.bottom

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:  # bottom of the plot area
        return self.top + self.height

    @property
    def y1(self) -> float:
        return self.top


@attrs.frozen
class Line:
    name: str
    color: str
    points: Sequence[tuple[float, float | None]]
    dash: str = ""
    width: float = 1.6
    #: join the line across up to this many missing points (None) in a row; longer gaps break it
    bridge: int = 0


@attrs.frozen
class Layer:
    """One band of a stacked chart: ``values[i]`` holds over slot ``i``."""

    name: str
    color: str
    values: Sequence[float]


@attrs.frozen
class VMark:
    """A vertical line at ``x``; ``label`` is written above the plot when there is room,
    ``tooltip`` always goes in the line's ``<title>``."""

    x: float
    label: str
    tooltip: str
    color: str
    dash: str = ""
    width: float = 1.5
    opacity: float = 0.9
    rug: float = 0.0  # > 0: only a tick this long at the top of the plot (for many marks)


@attrs.frozen
class Bar:
    lo: float
    hi: float
    count: int


# ---------------------------------------------------------------------------- ticks


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * magnitude * (1 + 1e-9):
            return m * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def nice_ceiling(value: float, target: int = 5, *, integer: bool = False) -> float:
    """A round number >= value to end an axis on (1 for value <= 0)."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    step = _nice_step(value, target)
    if integer:
        step = max(1.0, math.ceil(step))
    return math.ceil(value / step - 1e-9) * step


def linear_ticks(lo: float, hi: float, target: int = 6, *, integer: bool = False) -> list[float]:
    if not hi > lo:
        return [lo]
    step = _nice_step(hi - lo, target)
    if integer:
        step = max(1.0, math.ceil(step))
    first = math.ceil(lo / step - 1e-9)
    ticks, i = [], first
    while i * step <= hi * (1 + 1e-12) + 1e-12:
        ticks.append(round(i * step, 12))
        i += 1
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade inside ``[lo, hi]`` (powers of ten only over wide ranges); a
    narrow range gets linear ticks instead so that there are always at least two."""
    decades = math.log10(hi / lo)
    multipliers = (1, 2, 5) if decades <= 4 else (1,)
    every = max(1, math.ceil(decades / 8))
    ticks = [
        m * 10.0 ** d
        for d in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        if d % every == 0
        for m in multipliers
        if lo * (1 - 1e-9) <= m * 10.0 ** d <= hi * (1 + 1e-9)
    ]
    if len(ticks) < 3:
        ticks = sorted(set(ticks) | {t for t in linear_ticks(lo, hi, 3) if t > 0})
    return ticks


def format_tick(value: float) -> str:
    """Shortest fixed-point form of a tick value, with thousands separators."""
    if value == 0:
        return "0"
    for decimals in range(0, 8):
        if abs(round(value, decimals) - value) <= abs(value) * 1e-9:
            return f"{value:,.{decimals}f}"
    return f"{value:,.3g}"


# ---------------------------------------------------------------------------- parts


def _text(x: float, y: float, text: str, *, anchor: str = "middle", cls: str = "",
          extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return (f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}"{c}{extra}>'
            f"{esc(text)}</text>")


def _axes(frame: Frame, xs: Scale, ys: Scale, xticks: Sequence[float],
          yticks: Sequence[float], x_label: str, y_label: str,
          xfmt: Callable[[float], str] = format_tick,
          yfmt: Callable[[float], str] = format_tick) -> list[str]:
    parts = ['<g class="gridlines">']
    for t in yticks:
        y = ys(t)
        parts.append(f'<line x1="{_num(frame.x0)}" x2="{_num(frame.x1)}" y1="{_num(y)}" '
                     f'y2="{_num(y)}"/>')
    for t in xticks:
        x = xs(t)
        parts.append(f'<line x1="{_num(x)}" x2="{_num(x)}" y1="{_num(frame.y1)}" '
                     f'y2="{_num(frame.y0)}"/>')
    parts.append("</g>")
    parts.append(f'<g class="axis"><line x1="{_num(frame.x0)}" x2="{_num(frame.x1)}" '
                 f'y1="{_num(frame.y0)}" y2="{_num(frame.y0)}"/>'
                 f'<line x1="{_num(frame.x0)}" x2="{_num(frame.x0)}" y1="{_num(frame.y1)}" '
                 f'y2="{_num(frame.y0)}"/>')
    for t in xticks:
        x = xs(t)
        parts.append(f'<line x1="{_num(x)}" x2="{_num(x)}" y1="{_num(frame.y0)}" '
                     f'y2="{_num(frame.y0 + 4)}"/>')
        parts.append(_text(x, frame.y0 + 16, xfmt(t), cls="tick"))
    for t in yticks:
        y = ys(t)
        parts.append(f'<line x1="{_num(frame.x0 - 4)}" x2="{_num(frame.x0)}" y1="{_num(y)}" '
                     f'y2="{_num(y)}"/>')
        parts.append(_text(frame.x0 - 7, y + 4, yfmt(t), anchor="end", cls="tick"))
    parts.append(_text((frame.x0 + frame.x1) / 2, frame.y0 + 36, x_label, cls="axis-label"))
    cy = (frame.y0 + frame.y1) / 2
    parts.append(_text(14, cy, y_label, cls="axis-label",
                       extra=f' transform="rotate(-90 14 {_num(cy)})"'))
    parts.append("</g>")
    return parts


def _svg(frame: Frame, title: str, parts: Sequence[str]) -> str:
    w, h = _num(frame.width), _num(frame.total_height)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" '
            f'width="{w}" height="{h}" role="img" aria-label="{esc(title)}">'
            f"<title>{esc(title)}</title>" + "".join(parts) + "</svg>")


def _no_data(frame: Frame, message: str) -> str:
    return _text((frame.x0 + frame.x1) / 2, (frame.y0 + frame.y1) / 2, message, cls="no-data")


Placement = tuple[str, str, float, float, float]


def _label_place(mark: VMark, x: float, frame: Frame,
                 lines: Sequence[float] = ()) -> Placement | None:
    """(shown label, text-anchor, text x, left, right), or None when there is no room.

    A label starts at its own line and runs right (rows keep labels apart, and a line rises
    only to its own row, so it never crosses a label above it). Where that would run past the
    chart's edge the label ends at its line instead, but only if it then spans no other
    labelled line (``lines``: their x) -- else it would start beside that line and read as
    its label; failing both, it is cut (with an ellipsis) to the larger room."""
    label = mark.label
    if len(label) > MAX_LABEL_CHARS:
        label = label[: MAX_LABEL_CHARS - 1] + "\u2026"
    right_room = frame.width - (x + 3)
    left_room = (x - 3) - (max((v for v in lines if v < x - 1.0), default=0.0) + 3)
    width = len(label) * CHAR_WIDTH + 8
    if width > right_room and width > left_room:
        chars = int((max(right_room, left_room) - 8) // CHAR_WIDTH)
        if chars < 4:
            return None
        label = label[: chars - 1] + "\u2026"
        width = len(label) * CHAR_WIDTH + 8
    if width <= right_room:
        return label, "start", x + 3, x + 3, x + 3 + width
    return label, "end", x - 3, x - 3 - width, x - 3


def _label_lines(marks: Sequence[VMark], xs: Scale) -> list[float]:
    """The x of every line that rises into the label rows (labelled, not a rug tick)."""
    return [xs(m.x) for m in marks if m.label and not m.rug]


def _label_rows(marks: Sequence[VMark], xs: Scale, frame: Frame) -> list[int | None]:
    """Row of each mark's label (None: no label, or no room left: tooltip only), filled
    greedily left to right."""
    lines = _label_lines(marks, xs)
    row_ends: list[float] = []
    rows: list[int | None] = []
    for mark in marks:
        place = None if not mark.label or mark.rug else _label_place(mark, xs(mark.x), frame, lines)
        if place is None:
            rows.append(None)
            continue
        _, _, _, left, right = place
        for r, row_end in enumerate(row_ends):
            if row_end < left:
                row_ends[r] = right
                rows.append(r)
                break
        else:
            if len(row_ends) < MAX_LABEL_ROWS:
                row_ends.append(right)
                rows.append(len(row_ends) - 1)
            else:
                rows.append(None)
    return rows


def _marks(marks: Sequence[VMark], rows: Sequence[int | None], xs: Scale,
           frame: Frame) -> list[str]:
    """The lines, then the labels over them (with a white halo, see the page's CSS)."""
    lines, labels = ['<g class="marks">'], ['<g class="mark-labels">']
    label_lines = _label_lines(marks, xs)
    for mark, row in zip(marks, rows):
        x = xs(mark.x)
        top = frame.y1 if row is None else 4 + row * ROW_HEIGHT + 3
        bottom = frame.y1 + mark.rug if mark.rug else frame.y0
        dash = f' stroke-dasharray="{mark.dash}"' if mark.dash else ""
        lines.append(
            f'<g><title>{esc(mark.tooltip)}</title>'
            f'<line x1="{_num(x)}" x2="{_num(x)}" y1="{_num(top)}" y2="{_num(bottom)}" '
            f'stroke="{mark.color}" stroke-width="{mark.width}" opacity="{mark.opacity}"{dash}/></g>'
        )
        if row is not None:
            place = _label_place(mark, x, frame, label_lines)
            assert place is not None  # a mark with a row has a place
            label, anchor, tx, _, _ = place
            labels.append(_text(tx, 4 + row * ROW_HEIGHT + 9, label, anchor=anchor,
                                cls="mark-label", extra=f' fill="{mark.color}"'))
    return lines + ["</g>"] + labels + ["</g>"]


def _marks_frame(frame: Frame, marks: Sequence[VMark], xs: Scale) -> tuple[Frame, list[int | None]]:
    rows = _label_rows(marks, xs, frame)
    used = max((r for r in rows if r is not None), default=-1) + 1
    if used:
        frame = attrs.evolve(frame, top=max(frame.top, 8 + used * ROW_HEIGHT + 4))
    return frame, rows


# ---------------------------------------------------------------------------- charts


def line_chart(title: str, lines: Sequence[Line], *, x_max: float, x_label: str,
               y_label: str, marks: Sequence[VMark] = (), width: float = 1100,
               height: float = 190, integer_y: bool = False,
               empty_message: str = "no data recorded") -> str:
    frame = Frame(width, height)
    xs = Scale(0.0, x_max, frame.x0, frame.x1)
    frame, rows = _marks_frame(frame, marks, xs)
    values = [y for line in lines for _, y in line.points if y is not None and math.isfinite(y)]
    y_max = nice_ceiling(max(values, default=0.0), integer=integer_y)
    ys = Scale(0.0, y_max, frame.y0, frame.y1)
    parts = _axes(frame, xs, ys, linear_ticks(0.0, x_max, 10),
                  linear_ticks(0.0, y_max, 5, integer=integer_y), x_label, y_label)
    parts += _marks(marks, rows, xs, frame)
    for line in lines:
        parts.append(_polyline(line, xs, ys))
    if not values:
        parts.append(_no_data(frame, empty_message))
    return _svg(frame, title, parts)


def _polyline(line: Line, xs: Scale, ys: Scale) -> str:
    runs: list[list[tuple[float, float]]] = [[]]
    missing = 0
    for x, y in line.points:
        if y is None or not math.isfinite(y):
            missing += 1
            continue
        if missing > line.bridge and runs[-1]:
            runs.append([])
        missing = 0
        runs[-1].append((xs(x), ys(y)))
    dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
    parts = [f'<g class="series" stroke="{line.color}" fill="{line.color}">'
             f"<title>{esc(line.name)}</title>"]
    for run in runs:
        if len(run) == 1:
            parts.append(f'<circle cx="{_num(run[0][0])}" cy="{_num(run[0][1])}" r="2.2"/>')
        elif run:
            d = "M" + " L".join(f"{_num(px)} {_num(py)}" for px, py in run)
            parts.append(f'<path d="{d}" fill="none" stroke-width="{line.width}"{dash}/>')
    parts.append("</g>")
    return "".join(parts)


def stacked_steps_chart(title: str, layers: Sequence[Layer], *, origin: float,
                        interval: float, x_max: float, x_label: str, y_label: str,
                        lines: Sequence[Line] = (), marks: Sequence[VMark] = (),
                        width: float = 1100, height: float = 190,
                        empty_message: str = "no data recorded") -> str:
    """``layers`` stacked as bands of steps; ``lines`` drawn over them, not stacked."""
    frame = Frame(width, height)
    xs = Scale(0.0, x_max, frame.x0, frame.x1)
    frame, rows = _marks_frame(frame, marks, xs)
    slots = max((len(layer.values) for layer in layers), default=0)
    totals = [sum(layer.values[i] for layer in layers if i < len(layer.values))
              for i in range(slots)]
    overlay = [y for line in lines for _, y in line.points if y is not None and math.isfinite(y)]
    y_max = nice_ceiling(max(totals + overlay, default=0.0), integer=True)
    ys = Scale(0.0, y_max, frame.y0, frame.y1)
    parts = _axes(frame, xs, ys, linear_ticks(0.0, x_max, 10),
                  linear_ticks(0.0, y_max, 5, integer=True), x_label, y_label)
    base = [0.0] * slots
    for layer in layers:
        top = [base[i] + (layer.values[i] if i < len(layer.values) else 0.0) for i in range(slots)]
        if any(t > b for t, b in zip(top, base)):
            upper, lower = [], []
            for i in range(slots):
                a, b = origin + i * interval, origin + (i + 1) * interval
                upper += [(a, top[i]), (b, top[i])]
                lower += [(a, base[i]), (b, base[i])]
            points = upper + lower[::-1]
            pts = " ".join(f"{_num(xs(x))},{_num(ys(y))}" for x, y in points)
            parts.append(f'<polygon class="band" points="{pts}" fill="{layer.color}" '
                         f'stroke="{layer.color}"><title>{esc(layer.name)}</title></polygon>')
        base = top
    parts += [_polyline(line, xs, ys) for line in lines]
    parts += _marks(marks, rows, xs, frame)
    if not any(totals) and not any(overlay):
        parts.append(_no_data(frame, empty_message))
    return _svg(frame, title, parts)


def histogram_chart(title: str, bars: Sequence[Bar], *, markers: Sequence[VMark] = (),
                    x_label: str, y_label: str = "samples", unit: str = "ms",
                    width: float = 540, height: float = 170) -> str:
    """Bars over ``[lo, hi)`` on a log10 x axis (values > 0)."""
    frame = Frame(width, height, left=58, right=16)
    if bars:
        lo, hi = min(b.lo for b in bars), max(b.hi for b in bars)
        centre, span = math.sqrt(lo * hi), max(hi / lo, 10.0)  # at least a decade wide
        lo, hi = min(lo, centre / math.sqrt(span)) / 1.15, max(hi, centre * math.sqrt(span)) * 1.15
    else:
        lo, hi = 1.0, 1000.0
    xs = Scale(lo, hi, frame.x0, frame.x1, log=True)
    frame, rows = _marks_frame(frame, markers, xs)
    y_max = nice_ceiling(max((b.count for b in bars), default=0), integer=True)
    ys = Scale(0.0, y_max, frame.y0, frame.y1)
    parts = _axes(frame, xs, ys, log_ticks(lo, hi), linear_ticks(0.0, y_max, 4, integer=True),
                  x_label, y_label)
    parts.append('<g class="bars">')
    for bar in bars:
        x0, x1 = xs(bar.lo), xs(bar.hi)
        y = ys(bar.count)
        parts.append(
            f'<rect x="{_num(x0)}" y="{_num(y)}" width="{_num(max(x1 - x0 - 0.6, 0.8))}" '
            f'height="{_num(frame.y0 - y)}"><title>{esc(format_tick(_round3(bar.lo)))}\u2013'
            f"{esc(format_tick(_round3(bar.hi)))} {esc(unit)}: {bar.count}</title></rect>"
        )
    parts.append("</g>")
    parts += _marks(markers, rows, xs, frame)
    if not bars:
        parts.append(_no_data(frame, "no samples"))
    return _svg(frame, title, parts)


def _round3(value: float) -> float:
    """Three significant digits, for bucket bounds in tooltips."""
    if value <= 0:
        return 0.0
    digits = 2 - math.floor(math.log10(value))
    return round(value, digits)
