"""Live progress of a run: a rich display on a terminal, JSON lines for machines, or nothing.

Each reporter is a callable fed one progress dict per second by the runner; ``close()``
ends the display.  The rich display goes to stderr so that stdout stays the summary.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

__all__ = ["make_reporter", "JsonLinesReporter", "RichReporter", "QuietReporter"]


class QuietReporter:
    def __call__(self, progress: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class JsonLinesReporter:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def __call__(self, progress: dict[str, Any]) -> None:
        stream = self.stream or sys.stdout
        stream.write(json.dumps({"progress": progress}, separators=(",", ":")) + "\n")
        stream.flush()

    def close(self) -> None:
        pass


class RichReporter:
    def __init__(self, stream: TextIO | None = None):
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream or sys.stderr)
        self.live = Live(console=self.console, refresh_per_second=4, transient=True)
        self.live.start()
        self._last_turns = 0
        self._last_t = 0.0

    def __call__(self, progress: dict[str, Any]) -> None:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        dt = max(progress["t"] - self._last_t, 1e-9)
        turns_per_s = (progress["turns"] - self._last_turns) / dt if self._last_t or progress["t"] else 0.0
        self._last_turns, self._last_t = progress["turns"], progress["t"]
        table = Table.grid(padding=(0, 2))
        table.add_row("phase", progress["phase"] or "-", "elapsed", f"{progress['t']:.0f}s")
        states = ", ".join(f"{k} {v}" for k, v in progress["sessions"].items() if v)
        table.add_row("sessions", states or "-", "started", str(progress["started"]))
        table.add_row("turns/s", f"{turns_per_s:.1f}", "turns", str(progress["turns"]))
        table.add_row("errors", str(progress["errors"]), "reconnects", str(progress["reconnects"]))
        limit = progress.get("limit") or 0
        bar = ProgressBar(total=limit or 1, completed=min(progress["t"], limit or 1), width=40)
        outer = Table.grid()
        outer.add_row(table)
        outer.add_row(bar)
        self.live.update(outer)

    def close(self) -> None:
        self.live.stop()


def make_reporter(*, quiet: bool, json_lines: bool) -> Any:
    if json_lines:
        return JsonLinesReporter()
    if quiet or not sys.stderr.isatty():
        return QuietReporter()
    return RichReporter()
