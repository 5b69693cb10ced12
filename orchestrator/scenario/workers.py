"""``rtfleet run --workers N``: one trio process per worker, each running one shard.

The parent starts ``N`` child processes (``python -m orchestrator run SCENARIO --shard i/N
--emit-fd FD --client-faults-only``).  Each child streams length-prefixed msgpack frames to the
parent over its own pipe (see :mod:`orchestrator.scenario.stream`): ``hello``, a ``progress``
frame a second, then its whole ``result`` (counters, gauges, mergeable histograms, timeline,
marks, errors) or an ``error``, and ``end``.  The parent decodes them as they arrive, feeds the
combined progress to the live display, and merges the results (histograms merged bucket by
bucket, never percentiles averaged) into one result and one verdict.

**The embedded target.**  With ``target: embedded`` (or ``--target embedded``) the parent runs
*one* embedded server, in the parent process, and every worker connects to it (``--target
URL``; the key goes to the child in its environment, never on its command line).  The parent
also runs the scenario's fault timeline against that server: ``kill_server``,
``reject_keys``, ``add_latency``, ``expire_keys``, ``malformed`` and the target's static
``faults`` hit the one server every worker uses, as they would in a single-process run.
``drop_connections`` is client side: each worker drops its share of its own sessions.  The
timeline's clock starts with the run clock of the last worker to start (known from its first
progress frame, which the runner sends as it starts); workers that started earlier are ahead
by the difference (typically tens of milliseconds; up to a second on a loaded machine).  The parent counts ``faults.injected`` once per timeline entry; the
children's copies of that counter are replaced by the parent's.

**Failures.**  A worker that reports an ``error`` fails the run with its message and code (2
usage, 3 run failed).  A worker that dies (killed, crashed, or its stream ends inside a frame
or without a result) fails the run with exit 3 and a message naming the worker, how it ended
(signal or exit code), the stream's state (frames received, a truncated frame) and its last
progress; the other workers are stopped.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
from functools import partial
from typing import Any, Callable, Sequence

import attrs
import trio

from orchestrator.exits import EXIT_BUDGET, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, EXIT_THRESHOLDS, EXIT_USAGE
from orchestrator.scenario.shard import merge_results
from orchestrator.scenario.stream import VERSION, FrameDecoder, StreamError

__all__ = ["run_workers", "WorkerFailed"]

_TAIL = 4096


class WorkerFailed(Exception):
    def __init__(self, code: int, message: str):
        self.code = code
        super().__init__(message)


@attrs.define(eq=False)
class _Worker:
    index: int
    count: int
    pid: int | None = None
    hello: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    stream_error: str | None = None
    returncode: int | None = None
    frames: int = 0
    stderr: bytearray = attrs.field(factory=bytearray)

    @property
    def name(self) -> str:
        return f"worker {self.index + 1}/{self.count}" + (f" (pid {self.pid})" if self.pid else "")

    def failure(self) -> WorkerFailed | None:
        """None when the worker finished with a result; else why it did not."""
        if self.error is not None:
            code = self.error.get("code", EXIT_RUNTIME)
            if code not in (EXIT_USAGE, EXIT_RUNTIME, EXIT_INTERRUPTED):
                code = EXIT_RUNTIME
            return WorkerFailed(code, f"{self.name}: {self.error.get('message', 'failed')}")
        if self.result is not None and self.end is not None and self.stream_error is None \
                and self.returncode in (EXIT_OK, EXIT_THRESHOLDS, EXIT_BUDGET):
            return None
        rc = self.returncode
        if rc is None:
            how = "did not finish"
        elif rc < 0:
            try:
                how = f"was killed by {signal.Signals(-rc).name}"
            except ValueError:
                how = f"was killed by signal {-rc}"
        elif rc == EXIT_INTERRUPTED:
            return WorkerFailed(EXIT_INTERRUPTED, f"{self.name} was interrupted")
        else:
            how = f"exited with code {rc}"
        details = [f"{self.frames} frame(s) received"]
        if self.stream_error:
            details.append(self.stream_error)
        elif self.result is None:
            details.append("no result frame")
        elif self.end is None:
            details.append("no end frame")
        if self.progress is not None:
            details.append(f"last progress at t={self.progress.get('t')}s, "
                           f"{self.progress.get('started', 0)} session(s) started")
        last = self.stderr.decode(errors="replace").strip().splitlines()
        if last:
            details.append(f"last stderr line: {last[-1][-300:]}")
        return WorkerFailed(EXIT_RUNTIME, f"{self.name} {how}: " + "; ".join(details))


async def run_workers(
    scenario_path: str,
    count: int,
    *,
    scenario: Any = None,
    target: str | None = None,
    seed: int | None = None,
    extra_args: Sequence[str] = (),
    on_tick: Callable[[dict[str, Any]], None] | None = None,
    python: str = sys.executable,
    on_metrics: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Run ``count`` workers on shards of ``scenario_path`` and merge their results.

    ``scenario`` is the parent's view of the run (loaded, time-scaled): its target decides
    whether the parent serves one shared embedded server, and its fault timeline is run here.
    Without it the file is loaded.  ``target`` overrides the scenario's target as on the CLI.
    ``on_metrics(worker, url)``: a worker (``"1"``..``"N"``) serves its metrics at ``url``
    (``--metrics-port`` given to the workers in ``extra_args``).
    """
    from orchestrator.scenario.model import EmbeddedTarget
    from orchestrator.scenario.runmetrics import RunMetrics

    if scenario is None:
        from orchestrator.scenario import load_scenario

        scenario = load_scenario(scenario_path)
    shared = target == "embedded" or (target is None and isinstance(scenario.target, EmbeddedTarget))
    if seed is not None:  # as given; else each shard keeps its own seed (scenario seed + index)
        extra_args = [*extra_args, "--seed", str(seed)]
    seed = scenario.seed if seed is None else seed
    workers = [_Worker(i, count) for i in range(count)]
    everyone_started = trio.Event()
    started_at: dict[int, float] = {}
    first_failure: list[WorkerFailed] = []
    marks: list[dict[str, Any]] = []
    parent_metrics: RunMetrics | None = None
    server_info: dict[str, Any] | None = None
    base_args = [python, "-m", "orchestrator", "run", scenario_path, "--client-faults-only",
                 *extra_args]
    env = dict(os.environ)

    def tick() -> None:
        if on_tick is not None:
            latest = [w.progress for w in workers if w.progress is not None]
            if latest:
                on_tick(_combine(latest))

    def on_frame(worker: _Worker, frame: dict[str, Any]) -> None:
        kind = frame["k"]
        if kind == "hello":
            if frame.get("v") != VERSION:
                raise StreamError(f"stream version {frame.get('v')!r}, expected {VERSION}")
            worker.hello = frame
        elif kind == "progress":
            if worker.progress is None:  # its run has started (the runner ticks at once)
                started_at[worker.index] = trio.current_time() - float(frame["p"].get("t", 0.0))
                if len(started_at) == count:
                    everyone_started.set()
            worker.progress = frame["p"]
            tick()
        elif kind == "result":
            worker.result = frame["r"]
        elif kind == "error":
            worker.error = frame
        elif kind == "end":
            worker.end = frame
        elif kind == "metrics" and on_metrics is not None and isinstance(frame.get("url"), str):
            on_metrics(str(worker.index + 1), frame["url"])
        # unknown kinds are skipped: a newer worker may send more

    async def run_one(worker: _Worker, stop: trio.CancelScope) -> None:
        read_fd, write_fd = os.pipe()
        args = [*base_args, "--shard", f"{worker.index + 1}/{count}", "--emit-fd", str(write_fd)]
        try:
            async with trio.open_nursery() as nursery:
                try:
                    process = await nursery.start(partial(
                        trio.run_process, args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, check=False, pass_fds=(write_fd,), env=env))
                finally:
                    os.close(write_fd)  # the child holds the only write end: EOF when it exits
                worker.pid = process.pid
                nursery.start_soon(_tail, process.stderr, worker.stderr)
                decoder = FrameDecoder()
                stream = trio.lowlevel.FdStream(read_fd)
                read_fd = -1
                async with stream:
                    try:
                        async for chunk in stream:
                            for frame in decoder.feed(chunk):
                                worker.frames = decoder.frames
                                on_frame(worker, frame)
                        decoder.close()
                    except StreamError as exc:
                        worker.stream_error = f"bad stream: {exc}"
                        process.kill()
                worker.returncode = await process.wait()
        finally:
            if read_fd >= 0:
                os.close(read_fd)
        failure = worker.failure()
        if failure is not None:
            first_failure.append(failure)
            stop.cancel()  # one worker failed: the run has failed, stop the others

    async with trio.open_nursery() as root:
        control = None
        if shared:
            from orchestrator.scenario.chaos import ServerControl
            from standin import EmbeddedServer, FaultPlan

            key = f"sk-local-{secrets.token_urlsafe(16)}"
            target_faults = scenario.target.faults if isinstance(scenario.target, EmbeddedTarget) else None
            plan = FaultPlan(**target_faults.plan_fields(seed)) if target_faults else FaultPlan(seed=seed)
            model = None
            if isinstance(scenario.target, EmbeddedTarget):
                from orchestrator.scenario.runner import RunInputError
                from orchestrator.scenario.stand_in import stand_in_model

                try:
                    model = stand_in_model(scenario.target, seed)
                except ValueError as exc:
                    raise RunInputError(str(exc)) from None
            server = EmbeddedServer(api_keys={key}, faults=plan,
                                    **({} if model is None else {"model_config": model}))
            control = ServerControl(server, root)
            url = await control.start()
            base_args += ["--target", url]
            env["OPENAI_API_KEY"] = key  # RemoteTarget's default api_key_env; never on argv
        elif target is not None:
            base_args += ["--target", target]

        async def timeline() -> None:
            nonlocal parent_metrics
            await everyone_started.wait()
            # the timeline's clock starts with the last worker's run clock
            metrics = parent_metrics = RunMetrics(trio.current_time, max(started_at.values()))
            await _fault_timeline(scenario, control, metrics, random.Random(seed),
                                  lambda kind, label: marks.append(
                                      {"t": round(metrics.elapsed(), 3), "kind": kind, "label": label}))

        async with trio.open_nursery() as outer:
            outer.start_soon(timeline)
            async with trio.open_nursery() as processes:
                for worker in workers:
                    processes.start_soon(run_one, worker, processes.cancel_scope)
            outer.cancel_scope.cancel()  # every worker has ended: so does the timeline
        if control is not None:
            stats = control.server.stats
            server_info = {"shared": True, "process": "parent", "restarts": control.restarts,
                           "connections_opened": stats.connections_opened,
                           "auth_failures": stats.auth_failures,
                           "keys_rejected": stats.faults.keys_rejected}
        root.cancel_scope.cancel()

    if first_failure:  # the worker that failed first, not one the parent stopped after it
        raise first_failure[0]
    failures = [f for f in (w.failure() for w in workers) if f is not None]
    if failures:
        raise failures[0]
    parent = None
    if parent_metrics is not None:
        parent = {"metrics": parent_metrics.registry.snapshot(), "marks": marks,
                  "replace": ["faults.injected"]}
    merged = merge_results([w.result for w in workers], parent=parent)
    merged["scenario"]["workers"] = count
    if shared:
        from orchestrator.scenario.results import redact_config
        from orchestrator.scenario.unstructure import unstructure_scenario

        merged["target"] = "embedded"
        merged["embedded_server"] = server_info
        try:
            merged["scenario"]["config"] = redact_config(unstructure_scenario(scenario, effective=True))
        except Exception:  # never lose a run's results over its config dump
            pass
    return merged


async def _fault_timeline(scenario: Any, control: Any, metrics: Any, rng: random.Random,
                          mark: Callable[[str, str], None]) -> None:
    """Server-side faults applied to the shared server (when there is one); every entry,
    server or client side, counted once in ``faults.injected``."""
    from orchestrator.scenario.chaos import run_faults

    server_side = [e for e in scenario.faults if e.action.server_side]
    client_side = [e for e in scenario.faults if not e.action.server_side]
    async with trio.open_nursery() as nursery:
        if control is not None and server_side:
            nursery.start_soon(partial(run_faults, server_side, fleet=None, control=control,
                                       metrics=metrics, rng=rng, mark=mark))
        for event in sorted(client_side, key=lambda e: e.at):
            await trio.sleep_until(metrics.origin + event.at)
            metrics.inc("faults.injected")  # each worker drops its own share


async def _tail(stream: Any, tail: bytearray) -> None:
    async for chunk in stream:
        tail.extend(chunk)
        del tail[:-_TAIL]


def _combine(progress: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"t": max(p["t"] for p in progress), "phase": progress[0]["phase"],
                             "limit": progress[0].get("limit"), "sessions": {}}
    for key in ("started", "completed", "failed", "turns", "errors", "reconnects"):
        total[key] = sum(p.get(key, 0) for p in progress)
    for p in progress:
        for state, n in p["sessions"].items():
            total["sessions"][state] = total["sessions"].get(state, 0) + n
    return total
