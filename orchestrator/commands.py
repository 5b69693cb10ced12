"""The bodies of the CLI commands.  Each returns an exit code or raises UsageError/RunFailed
(both from :mod:`orchestrator.exits`); :func:`orchestrator.cli.main` maps them to exit codes."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
from functools import partial

import trio

from orchestrator.exits import (EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, EXIT_THRESHOLDS, EXIT_USAGE,
                                RunFailed, UsageError)

__all__ = ["serve_command", "validate_command", "run_command"]


def serve_command(args: argparse.Namespace) -> int:
    from orchestrator.server import generate_api_key, run_server

    if not (0 <= args.port <= 65535):
        raise UsageError(f"--port must be 0..65535, not {args.port}")
    key = args.api_key or generate_api_key()
    key_file = None if args.api_key else _write_key_file(key)

    async def stop_on_signal(cancel: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                cancel.cancel()
                return

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_signal, nursery.cancel_scope)
            try:
                webrtc = {"auto": None, "on": True, "off": False}[args.webrtc]
                url = await nursery.start(partial(run_server, args.host, args.port, [key],
                                                  webrtc=webrtc, demo_token=args.demo_token))
            except OSError as exc:
                raise RunFailed(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
            print(f"rtfleet embedded server on {url}", flush=True)
            print(f"  WebSocket   {url.replace('http', 'ws', 1)}/v1/realtime?model=gpt-realtime", flush=True)
            print(f"  secrets     POST {url}/v1/realtime/client_secrets", flush=True)
            if args.webrtc != "off":
                print(f"  WebRTC      POST {url}/v1/realtime/calls", flush=True)
            if args.demo_token:
                print(f"  demo page   {url}/demo (token required)", flush=True)
            if key_file:
                # The generated key goes to a private file, never to the terminal or a log.
                print(f"  API key     in {key_file} (mode 0600)", flush=True)
            if not _is_loopback(args.host):
                print(f"  warning: listening on {args.host}, reachable from other hosts", file=sys.stderr)

    try:
        trio.run(main)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def _write_key_file(key: str) -> str:
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix="rtfleet-server-", suffix=".key")
    with os.fdopen(fd, "w") as f:  # mkstemp creates the file with mode 0600
        f.write(key + "\n")
    return path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load(path: str):  # type: ignore[no-untyped-def]
    from orchestrator.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None


def validate_command(args: argparse.Namespace) -> int:
    scenario = _load(args.scenario)
    print(f"{args.scenario}: ok ({scenario.name}: {len(scenario.populations)} population(s), "
          f"{len(scenario.thresholds)} threshold(s))")
    return EXIT_OK


def _prepare(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The scenario this process runs: loaded, sharded, time-scaled, and (a --workers child)
    without the server-side faults that the parent applies to the shared server."""
    scenario = _load(args.scenario)
    if args.shard:
        from orchestrator.scenario.shard import ShardSpecError, parse_shard, shard

        try:
            index, count = parse_shard(args.shard)
        except ShardSpecError as exc:
            raise UsageError(str(exc)) from None
        scenario = shard(scenario, index, count)
    if args.time_scale != 1:
        from orchestrator.scenario.timescale import scale_time

        try:
            scenario = scale_time(scenario, args.time_scale)
        except ValueError as exc:
            raise UsageError(f"--time-scale: {exc}") from None
    if getattr(args, "client_faults_only", False):
        import attrs

        scenario = attrs.evolve(scenario, faults=tuple(
            f for f in scenario.faults if not f.action.server_side))
    return scenario


def run_command(args: argparse.Namespace) -> int:
    if args.workers > 1:
        return _run_workers(args)
    if args.emit_fd is not None:
        return _run_as_worker(args)
    return _run(args, reporter=None)


def _run(args: argparse.Namespace, reporter, on_result=None) -> int:  # type: ignore[no-untyped-def]
    import json
    from pathlib import Path

    from orchestrator.scenario.progress import make_reporter
    from orchestrator.scenario.results import format_summary, write_results
    from orchestrator.scenario.runner import RunError, RunInputError, run_scenario
    from orchestrator.telemetry import setup_telemetry

    scenario = _prepare(args)
    try:
        telemetry = setup_telemetry(trace_file=args.trace_file)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    if reporter is None:
        reporter = make_reporter(quiet=args.quiet, json_lines=args.json)
    try:
        result = trio.run(lambda: run_scenario(scenario, file=args.scenario, target=args.target,
                                               seed=args.seed, on_tick=reporter))
    except RunInputError as exc:
        raise UsageError(str(exc)) from None
    except RunError as exc:
        raise RunFailed(str(exc)) from None
    finally:
        reporter.close()
        telemetry.shutdown()
    written = write_results(Path(args.out), result.results) if args.out else []
    if on_result is not None:
        on_result(result)
    elif args.json:
        print(json.dumps({"summary": {k: result.results[k] for k in
                                      ("verdict", "sessions", "thresholds", "duration_s")}},
                         separators=(",", ":"), default=str))
    else:
        print(format_summary(result.results))
        for path in written:
            print(f"wrote {path}")
    return result.exit_code


class _StreamReporter:
    """Progress as msgpack frames to the parent (a --workers child)."""

    def __init__(self, writer):  # type: ignore[no-untyped-def]
        self.writer = writer

    def __call__(self, progress: dict) -> None:  # type: ignore[type-arg]
        _send(self.writer, "progress", p=progress)

    def close(self) -> None:
        pass


def _send(writer, kind: str, **fields) -> None:  # type: ignore[no-untyped-def]
    try:
        writer.send(kind, **fields)
    except BrokenPipeError:
        # the parent is gone: nobody reads this run any more
        print(f"rtfleet worker: parent stream closed (pid {os.getppid()}); stopping",
              file=sys.stderr, flush=True)
        os._exit(EXIT_RUNTIME)


def _run_as_worker(args: argparse.Namespace) -> int:
    """A child of ``--workers``: frames to the parent on ``--emit-fd`` (see scenario/stream.py)."""
    import traceback

    from orchestrator.scenario.stream import VERSION, FrameWriter

    try:
        writer = FrameWriter(args.emit_fd)
    except OSError as exc:
        raise UsageError(f"--emit-fd {args.emit_fd}: {exc.strerror or exc}") from None
    _send(writer, "hello", v=VERSION, shard=args.shard, pid=os.getpid())
    code = EXIT_RUNTIME
    try:
        code = _run(args, reporter=_StreamReporter(writer),
                    on_result=lambda result: _send(writer, "result", r=result.results))
        return code
    except UsageError as exc:
        code = EXIT_USAGE
        _send(writer, "error", code=code, message=str(exc))
        raise
    except RunFailed as exc:
        code = EXIT_RUNTIME
        _send(writer, "error", code=code, message=str(exc))
        raise
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        raise
    except Exception as exc:  # a bug: the parent reports it, the traceback goes to stderr
        traceback.print_exc()
        code = EXIT_RUNTIME
        _send(writer, "error", code=code, message=f"{type(exc).__name__}: {exc}")
        return code
    finally:
        try:
            writer.send("end", code=code)
        except OSError:
            pass
        writer.close()


def report_command(args: argparse.Namespace) -> int:
    from orchestrator.report import ReportError, rebuild_report

    if args.directories[0] == "merge":
        return _merge_command(args.directories[1:], args.out)
    if len(args.directories) != 1 or args.out:
        raise UsageError("usage: rtfleet report DIR  |  rtfleet report merge DIR DIR... --out DIR")
    try:
        path = rebuild_report(args.directories[0])
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {path}")
    return EXIT_OK


def _merge_command(directories: list[str], out: str | None) -> int:
    import json
    from pathlib import Path

    from orchestrator.scenario.results import format_summary, write_results
    from orchestrator.scenario.shard import merge_results

    if not directories or not out:
        raise UsageError("usage: rtfleet report merge DIR DIR... --out DIR")
    parts = []
    for directory in directories:
        path = Path(directory) / "results.json"
        try:
            parts.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
        except RecursionError:
            raise UsageError(f"{path}: not a results file (JSON nested too deeply)") from None
    try:
        merged = merge_results(parts)
        summary = format_summary(merged)  # before anything is written: it checks the shape too
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"cannot merge: not rtfleet results files ({type(exc).__name__}: {exc})") from None
    written = write_results(Path(out), merged)
    print(summary)
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK if merged["verdict"] == "pass" else EXIT_THRESHOLDS


def _run_workers(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from orchestrator.scenario.progress import make_reporter
    from orchestrator.scenario.results import format_summary, write_results
    from orchestrator.scenario.workers import WorkerFailed, run_workers

    if args.shard:
        raise UsageError("--workers and --shard do not combine (each worker is a shard)")
    if args.emit_fd is not None:
        raise UsageError("--workers and --emit-fd do not combine")
    scenario = _prepare(args)  # bad input fails here, once, not in every worker
    extra: list[str] = []
    if args.time_scale != 1:
        extra += ["--time-scale", str(args.time_scale)]
    reporter = make_reporter(quiet=args.quiet, json_lines=args.json)
    try:
        merged = trio.run(lambda: run_workers(args.scenario, args.workers, scenario=scenario,
                                              target=args.target, seed=args.seed,
                                              extra_args=extra, on_tick=reporter))
    except WorkerFailed as exc:
        if exc.code == EXIT_USAGE:
            raise UsageError(str(exc)) from None
        if exc.code == EXIT_INTERRUPTED:
            raise KeyboardInterrupt from None
        raise RunFailed(str(exc)) from None
    except OSError as exc:
        raise RunFailed(f"cannot start the workers: {exc.strerror or exc}") from None
    finally:
        reporter.close()
    written = write_results(Path(args.out), merged) if args.out else []
    if args.json:
        print(json.dumps({"summary": {k: merged[k] for k in ("verdict", "sessions", "thresholds", "duration_s")}},
                         separators=(",", ":"), default=str))
    else:
        print(format_summary(merged))
        for path in written:
            print(f"wrote {path}")
    return EXIT_OK if merged["verdict"] == "pass" else EXIT_THRESHOLDS
