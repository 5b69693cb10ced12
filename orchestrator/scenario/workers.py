"""``rtfleet run --workers N``: one trio process per worker, each running one shard.

The parent starts ``N`` child processes (``python -m orchestrator run SCENARIO --shard i/N
--json --out DIR/i``), aggregates their per-second progress lines for the live display, then
merges their ``results.json`` (histograms merged, never percentiles averaged) into one result
and one verdict.  A child that fails with a usage or run error fails the run with its message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import trio

from orchestrator.scenario.shard import merge_results

__all__ = ["run_workers", "WorkerFailed"]


class WorkerFailed(Exception):
    def __init__(self, code: int, message: str):
        self.code = code
        super().__init__(message)


async def run_workers(
    scenario_path: str,
    count: int,
    *,
    extra_args: Sequence[str] = (),
    on_tick: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rtfleet-workers-") as tmp:
        latest: dict[int, dict[str, Any]] = {}
        failures: list[tuple[int, int, str]] = []

        async def worker(index: int) -> None:
            out = Path(tmp) / str(index)
            args = [sys.executable, "-m", "orchestrator", "run", scenario_path,
                    "--shard", f"{index + 1}/{count}", "--json", "--out", str(out), *extra_args]
            stderr = bytearray()

            async def read_stdout(stream: Any) -> None:
                buffer = b""
                async for chunk in stream:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        _progress(line, index)

            async def read_stderr(stream: Any) -> None:
                async for chunk in stream:
                    stderr.extend(chunk[-4096:])

            async with trio.open_nursery() as nursery:
                process = await nursery.start(_process, args)
                nursery.start_soon(read_stdout, process.stdout)
                nursery.start_soon(read_stderr, process.stderr)
                await process.wait()
            if process.returncode not in (0, 1):
                message = stderr.decode(errors="replace").strip().splitlines()
                failures.append((index, process.returncode, message[-1] if message else ""))

        def _progress(line: bytes, index: int) -> None:
            try:
                data = json.loads(line)
            except ValueError:
                return
            if "progress" in data:
                latest[index] = data["progress"]
                if on_tick is not None:
                    on_tick(_combine(list(latest.values())))

        async with trio.open_nursery() as nursery:
            for index in range(count):
                nursery.start_soon(worker, index)
        if failures:
            index, code, message = min(failures, key=lambda f: f[0])
            raise WorkerFailed(code, f"worker {index + 1}/{count}: {message}")
        parts = [json.loads((Path(tmp) / str(i) / "results.json").read_text()) for i in range(count)]
    merged = merge_results(parts)
    merged["scenario"]["workers"] = count
    return merged


async def _process(args: list[str], task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    await trio.run_process(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                           task_status=task_status)


def _combine(progress: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"t": max(p["t"] for p in progress), "phase": progress[0]["phase"],
                             "limit": progress[0].get("limit"), "sessions": {}}
    for key in ("started", "completed", "failed", "turns", "errors", "reconnects"):
        total[key] = sum(p.get(key, 0) for p in progress)
    for p in progress:
        for state, n in p["sessions"].items():
            total["sessions"][state] = total["sessions"].get(state, 0) + n
    return total
