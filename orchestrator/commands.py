"""The bodies of the CLI commands.  Each returns an exit code or raises UsageError/RunFailed."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from typing import Any
from urllib.parse import urlsplit
from functools import partial

import trio

from orchestrator.exits import (
    EXIT_BUDGET,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_TERMINATED,
    EXIT_USAGE,
    RunFailed,
    UsageError,
)
from orchestrator.loopback import is_loopback

__all__ = ["serve_command", "validate_command", "run_command"]


def serve_command(args: argparse.Namespace) -> int:
    from orchestrator.heap_guard import server_stores, watch_heap
    from orchestrator.scenario.chaos import ServerControl
    from orchestrator.serve_faults import ServeFaults
    from orchestrator.serve_setup import serve_setup
    from standin import EmbeddedServer, generate_api_key
    from standin.keys.webhooks import new_webhook_secret

    if not (0 <= args.port <= 65535):
        raise UsageError(f"--port must be 0..65535, not {args.port}")
    from standin.model.config import KNOWN_MODELS

    models = None if args.models == "*" else (
        KNOWN_MODELS if args.models is None
        else tuple(m.strip() for m in args.models.split(",") if m.strip()))
    if models == ():
        raise UsageError("--models: give model names separated by commas, or '*' for any")
    setup = serve_setup(args)
    model_config = _stand_in_model(getattr(args, "model", None), getattr(args, "voice", None))
    endpoint = _metrics_endpoint(args)
    key = args.api_key or generate_api_key()
    key_file = None if args.api_key else _write_key_file(key)
    webhook_secret, webhook_file = setup.webhook_secret, None
    if setup.webhook_url and webhook_secret is None:
        webhook_secret = new_webhook_secret()
        webhook_file = _write_key_file(webhook_secret, "rtfleet-webhook-")

    async def stop_on_signal(cancel: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                cancel.cancel()
                return

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_signal, nursery.cancel_scope)
            provider = None
            if endpoint is not None:
                provider = _server_metrics(endpoint)
                try:
                    await nursery.start(endpoint.serve)
                except OSError as exc:
                    raise UsageError(f"--metrics-port: cannot listen on {endpoint.host}:"
                                     f"{endpoint.port}: {exc.strerror or exc}") from None
            webrtc = {"auto": None, "on": True, "off": False}[args.webrtc]
            server = EmbeddedServer(
                api_keys={key}, webrtc=webrtc, demo_token=args.demo_token, models=models,
                cors_origins=setup.cors_origins, sip_port=setup.sip_port,
                webhook_url=setup.webhook_url, webhook_secret=webhook_secret,
                sip_session=setup.sip_session, sip_accept_timeout=setup.sip_accept_timeout,
                sip_webhook_events=setup.sip_webhook_events,
                **({} if model_config is None else {"model_config": model_config}))
            control = ServerControl(server, nursery, args.host, args.port)
            faults = ServeFaults.for_file(control, nursery, setup.faults,
                                          announce=lambda line: print(f"  {line}", flush=True))
            server.fault_control = faults.control
            if provider is not None:
                from orchestrator.live_metrics import observe_server

                observe_server(provider.get_meter("rtfleet"), server)
                print(f"metrics for Prometheus at {endpoint.url}", flush=True)
            try:
                url = await control.start()
            except (OSError, BaseExceptionGroup) as exc:
                error = _only_os_error(exc)
                if error is None:
                    raise
                where = f"{args.host}:{args.port}" + (
                    f" (SIP: udp {setup.sip_port})" if setup.sip_port is not None else "")
                raise RunFailed(f"cannot listen on {where}: {error.strerror or error}") from None
            sip = None if server.sip is None else (
                f"sip:openai@{_host_for_uri(args.host)}:{server.sip.port}",
                setup.webhook_url, webhook_file)
            print(serve_banner(url, key_file=key_file, models=models, webrtc=args.webrtc != "off",
                               demo=bool(args.demo_token), cors=setup.cors_origins, sip=sip,
                               faults=args.faults, rules=getattr(args, "model", None),
                               voice=getattr(args, "voice", None)), flush=True)
            if not is_loopback(args.host):
                print(f"  warning: listening on {args.host}, reachable from other hosts", file=sys.stderr)
            if args.heap_warn_mb:
                nursery.start_soon(watch_heap, args.heap_warn_mb, partial(server_stores, server))
            if setup.faults is not None:
                nursery.start_soon(faults.run_timeline, setup.faults)

    try:
        trio.run(main)
    except KeyboardInterrupt:
        return EXIT_OK
    except BaseExceptionGroup as group:  # a Ctrl-C racing the nursery's start
        failed, rest = group.split((RunFailed, UsageError))
        if failed is not None and rest is None:
            leaf: BaseException = failed
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            raise leaf from None
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
        return EXIT_OK
    finally:
        for path in (key_file, webhook_file):
            if path:
                with contextlib.suppress(OSError):
                    os.unlink(path)
    return EXIT_OK


def _only_os_error(exc: BaseException) -> OSError | None:
    """The OSError (a port in use) behind ``exc``, when nothing else went wrong; else None."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve_banner(url: str, *, key_file: str | None, models: tuple[str, ...] | None,
                 webrtc: bool = True, demo: bool = False, cors: tuple[str, ...] = ("*",),
                 sip: tuple[str, str | None, str | None] | None = None,
                 faults: str | None = None, rules: str | None = None, voice: str | None = None) -> str:
    """What ``rtfleet serve`` prints once listening: the endpoints and a snippet to paste."""
    model = models[0] if models else "gpt-realtime"
    ws = url.replace("http", "ws", 1)
    key = f'open("{key_file}").read().strip()' if key_file else 'os.environ["OPENAI_API_KEY"]'
    shell_key = f"$(cat {key_file})" if key_file else "$OPENAI_API_KEY"
    lines = [
        f"rtfleet embedded server on {url}",
        f"  base URL    {url}/v1   (the SDKs' base_url; rtfleet --target takes it with or without /v1)",
        f"  WebSocket   {ws}/v1/realtime?model={model}",
        f"  secrets     POST {url}/v1/realtime/client_secrets",
    ]
    if webrtc:
        lines.append(f"  WebRTC      POST {url}/v1/realtime/calls")
    if demo:
        lines.append(f"  demo page   {url}/demo (token required)")
    lines.append("  browsers    " + ("CORS off (--cors-origin)" if not cors else
                                     "any origin (CORS *)" if "*" in cors else
                                     "CORS for " + ", ".join(cors)))
    if sip is not None:
        uri, webhook, secret_file = sip
        lines.append(f"  SIP         {uri} (UDP): " + (
            f"calls announced to {webhook}, decided by POST {url}/v1/realtime/calls/{{id}}/accept"
            if webhook else "every call accepted (--sip-accept auto)"))
        if secret_file:
            lines.append(f"  webhook key in {secret_file} (whsec_; mode 0600; removed when the server stops)")
    lines.append("  faults      " + (f"timeline from {faults}; " if faults else "")
                 + f"POST {url}/_rtfleet/faults (API key) injects one now")
    if key_file:
        # The generated key goes to a private file, never to the terminal or a log.
        lines.append(f"  API key     in {key_file} (mode 0600; removed when the server stops)")
    shown = ", ".join((models or ())[:3]) + (f", ... ({len(models)} names)"
                                              if len(models or ()) > 3 else "")
    lines.append("  models      " + (f"{shown}; others get model_not_found (--models)"
                                     if models else "any name"))
    lines += [
        "  the model is deterministic: " + (f"it answers by the rules in {rules}" if rules else
                                            "it answers 'You said: <your words>'")
        + (" (spoken by espeak-ng)" if (voice or "tone") != "tone" else " (a tone for audio)"),
        "",
        "  # Python, the official SDK:",
        "  from openai import AsyncOpenAI",
        f'  client = AsyncOpenAI(api_key={key}, base_url="{url}/v1")',
        f'  async with client.realtime.connect(model="{model}") as conn: ...',
        "",
        "  # a scenario against it:",
        f"  OPENAI_API_KEY={shell_key} rtfleet run SCENARIO.yaml --target {url}",
    ]
    return "\n".join(lines)


def _write_key_file(key: str, prefix: str = "rtfleet-server-") -> str:
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".key")
    with os.fdopen(fd, "w") as f:  # mkstemp creates the file with mode 0600
        f.write(key + "\n")
    return path




def _load(path: str):  # type: ignore[no-untyped-def]
    from orchestrator.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None


def _stand_in_model(path: str | None, voice: str | None) -> Any:
    """``--model RULES.yaml`` and ``--voice``: the stand-in's model config (None: the echo
    model and the tone)."""
    if not path and (voice or "tone") == "tone":
        return None
    from standin.model.rules import RulesError
    from standin.speech import SpeechError
    from standin.voice_model import model_config

    try:
        config, note = model_config(path or None, voice)
    except RulesError as exc:
        raise UsageError(f"--model: {exc}") from None
    except (ValueError, SpeechError) as exc:
        raise UsageError(f"--voice: {exc}") from None
    if note:
        print(f"note: {note}", flush=True)
    return config


def validate_command(args: argparse.Namespace) -> int:
    scenario = _load(args.scenario)
    print(f"{args.scenario}: ok ({scenario.name}: {len(scenario.populations)} population(s), "
          f"{len(scenario.thresholds)} threshold(s))")
    if getattr(args, "estimate", False):
        from orchestrator.scenario.estimate import estimate_scenario, format_estimate
        from orchestrator.scenario.model import RemoteTarget

        print(format_estimate(estimate_scenario(scenario), scenario,
                              hosted=isinstance(scenario.target, RemoteTarget)))
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
        if scenario.budget is not None or getattr(args, "max_cost", None) is not None:
            args.budget_share = count  # each shard spends its share of the budget
    scenario = _with_budget(args, scenario)
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


def _with_budget(args: argparse.Namespace, scenario):  # type: ignore[no-untyped-def]
    """``--max-cost`` over the scenario's ``budget.max_cost``; a shard's share of the budget;
    and the rule that a run against a hosted target (a remote one not on this machine) has a
    budget (or ``--no-budget``)."""
    import attrs

    from orchestrator.scenario.budget import Budget
    from orchestrator.scenario.model import RemoteTarget

    max_cost = getattr(args, "max_cost", None)
    if max_cost is not None:
        if max_cost <= 0:
            raise UsageError(f"--max-cost must be > 0 (USD), not {max_cost:g}")
        minutes = scenario.budget.max_session_minutes if scenario.budget is not None else None
        scenario = attrs.evolve(scenario, budget=Budget(max_cost=max_cost, max_session_minutes=minutes))
    share = getattr(args, "budget_share", 1)
    if scenario.budget is not None and share > 1:
        b = scenario.budget
        scenario = attrs.evolve(scenario, budget=Budget(
            max_cost=None if b.max_cost is None else b.max_cost / share,
            max_session_minutes=None if b.max_session_minutes is None else b.max_session_minutes / share))
    target = getattr(args, "target", None)
    url = target if target not in (None, "embedded") else (
        scenario.target.url if target is None and isinstance(scenario.target, RemoteTarget) else None)
    # a remote service that bills: anything but the embedded server or one on this machine
    # (a target that is no URL at all is --target's own error, reported later)
    hosted = url is not None and "://" in url and not is_loopback(urlsplit(url).hostname or "")
    if hosted and scenario.budget is None and not getattr(args, "no_budget", False):
        raise UsageError("a run against a hosted target needs a budget: add `budget: {max_cost: 20 USD}` "
                         "to the scenario or give --max-cost 20; --no-budget runs without one "
                         "(rtfleet validate --estimate prints what the scenario should cost)")
    return scenario


def run_command(args: argparse.Namespace) -> int:
    _check_live_page(args)
    if args.workers > 1:
        return _run_workers(args)
    if args.emit_fd is not None:
        return _run_as_worker(args)
    return _run(args, reporter=None)


def _run(args: argparse.Namespace, reporter, on_result=None, on_metrics=None) -> int:  # type: ignore[no-untyped-def]
    import json
    from pathlib import Path

    from orchestrator.scenario.progress import make_reporter
    from orchestrator.scenario.results import format_summary, write_results
    from orchestrator.scenario.runner import RunError, RunInputError, run_scenario
    from orchestrator.telemetry import setup_telemetry

    scenario = _prepare(args)
    endpoint = _metrics_endpoint(args)
    try:
        telemetry = setup_telemetry(trace_file=args.trace_file, metrics_endpoint=endpoint)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    if reporter is None:
        reporter = make_reporter(quiet=args.quiet, json_lines=args.json)
    signals_seen: list[int] = []
    live = _live_page(args, scenario)  # --ui: None without

    async def run_until_signalled():  # type: ignore[no-untyped-def]
        # The first Ctrl-C/SIGTERM ends the run early, with partial results; a second one quits.
        stop = trio.Event()
        lingering, linger_stop = False, trio.Event()  # --ui-linger: a signal ends only that

        async def watch() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
                async for signum in received:
                    if lingering:
                        linger_stop.set()
                        continue
                    if stop.is_set():
                        raise KeyboardInterrupt
                    signals_seen.append(signum)
                    stop.set()
                    print("interrupted: closing sessions and writing partial results "
                          "(again to quit at once)", file=sys.stderr, flush=True)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                if endpoint is not None:
                    await _start_endpoint(nursery, endpoint,
                                          quiet=args.quiet or args.json or on_metrics is not None)
                    if on_metrics is not None:  # a --workers child: the parent scrapes it
                        on_metrics(endpoint.url)
                if live is not None:
                    await _serve_live_page(nursery, live, args)
                result = await run_scenario(scenario, file=args.scenario, target=target,
                                            seed=args.seed, on_tick=reporter, stop=stop,
                                            heap_warn_mb=args.heap_warn_mb or None,
                                            on_live=live.attach if live is not None else None)
                if endpoint is not None and args.metrics_linger > 0:
                    await _linger(endpoint, args.metrics_linger)
                if live is not None:
                    live.finish(result.results)
                    if args.ui_linger > 0 and not stop.is_set():
                        lingering = True
                        print(f"live page: the final report, until a browser loads it (at most "
                              f"{args.ui_linger:g} s; Ctrl-C stops now)", file=sys.stderr,
                              flush=True)
                        await live.linger(args.ui_linger, linger_stop)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # the watcher raises only KeyboardInterrupt: the run's own error comes out alone
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        return result

    target = _check_target(args.target)
    try:
        result = trio.run(run_until_signalled)
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
    if signals_seen:
        return EXIT_TERMINATED if signals_seen[0] == signal.SIGTERM else EXIT_INTERRUPTED
    return result.exit_code


def _server_metrics(endpoint: Any) -> Any:
    """The server process's meter provider, read by ``endpoint``."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource

    from orchestrator.metrics_endpoint import histogram_views

    return MeterProvider(metric_readers=[endpoint.reader()], views=histogram_views(),
                             resource=Resource.create({"service.name": "rtfleet-serve"}))


def _metrics_endpoint(args: argparse.Namespace) -> Any:
    """``--metrics-port``: the process's Prometheus endpoint (None without the option)."""
    if getattr(args, "metrics_port", None) is None:
        return None
    if not (0 <= args.metrics_port <= 65535):
        raise UsageError(f"--metrics-port must be 0..65535, not {args.metrics_port}")
    if getattr(args, "metrics_linger", 0) < 0:
        raise UsageError(f"--metrics-linger must be >= 0, not {args.metrics_linger:g}")
    try:
        import prometheus_client  # noqa: F401
        from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: F401
    except ImportError:
        raise UsageError("--metrics-port needs the Prometheus exporter: "
                         "pip install 'rtfleet[prometheus]'") from None
    from orchestrator.metrics_endpoint import MetricsEndpoint

    return MetricsEndpoint(args.metrics_port, args.metrics_host)


async def _start_endpoint(nursery: trio.Nursery, endpoint: Any, *, quiet: bool = False) -> None:
    from orchestrator.scenario.runner import RunInputError

    try:
        await nursery.start(endpoint.serve)
    except OSError as exc:
        raise RunInputError(f"--metrics-port: cannot listen on {endpoint.host}:{endpoint.port}: "
                            f"{exc.strerror or exc}") from None
    if not quiet:
        print(f"metrics for Prometheus at {endpoint.url}", file=sys.stderr, flush=True)


async def _linger(endpoint: Any, seconds: float) -> None:
    """Serve until one scrape after the run's end came, at most ``seconds``."""
    with trio.move_on_after(seconds):
        await endpoint.next_scrape()


def _check_live_page(args: argparse.Namespace) -> None:
    """``--ui``, ``--ui-host``, ``--ui-linger``: checked before anything starts."""
    if args.ui is None:
        return
    if not 0 <= args.ui <= 65535:
        raise UsageError(f"--ui must be a port 0..65535, not {args.ui}")
    if not args.ui_linger >= 0:
        raise UsageError(f"--ui-linger must be seconds >= 0, not {args.ui_linger:g}")
    if args.workers > 1:
        # The parent of --workers sees its workers' progress counts, not their metrics: a
        # page of plots there would be made up. Each worker is a whole run of its own.
        raise UsageError("--ui shows one process's run: it does not combine with --workers "
                         "(the parent gets only progress counts from its workers, not the "
                         "metrics the page plots); run without --workers, or run shards "
                         "(--shard I/N) each with its own --ui port")


def _live_page(args: argparse.Namespace, scenario):  # type: ignore[no-untyped-def]
    """The live page for ``--ui`` (None without): everything it serves has key-like strings
    (sk-…, ek_…) and the run's API key redacted."""
    if args.ui is None or args.emit_fd is not None:
        return None
    from orchestrator.report.live import LivePage
    from orchestrator.scenario.model import RemoteTarget
    from orchestrator.scenario.remote import secret_values
    from orchestrator.scenario.results import redact_text

    remote = scenario.target if args.target is None else (
        None if args.target == "embedded" else RemoteTarget(url=args.target))
    keys = [k for k in secret_values(remote, os.environ) if len(k) >= 8]

    def scrub(text: str) -> str:
        text = redact_text(text)
        for key in keys:
            text = text.replace(key, "[redacted]")
        return text

    return LivePage(scrub=scrub)


async def _serve_live_page(nursery: trio.Nursery, live, args) -> None:  # type: ignore[no-untyped-def]
    """Start the live page in ``nursery`` and print its URL; a port in use is a usage error."""
    where = f"{_host_for_uri(args.ui_host)}:{args.ui}"
    try:
        url = await nursery.start(live.serve, args.ui_host, args.ui)
    except (OSError, BaseExceptionGroup) as exc:
        error = _only_os_error(exc)
        if error is None:
            raise
        raise UsageError(f"--ui: cannot serve the live page on {where}: "
                         f"{error.strerror or error}") from None
    print(f"live page: {url}", file=sys.stderr, flush=True)
    if not is_loopback(args.ui_host):
        print(f"  warning: the live page listens on {args.ui_host}, reachable from other hosts",
              file=sys.stderr, flush=True)


def _check_target(target: str | None) -> str | None:
    """``--target``: 'embedded' or an http(s)/ws(s) base URL, with or without ``/v1``."""
    if target is None or target == "embedded":
        return target
    if not target.startswith(("ws://", "wss://", "http://", "https://")):
        raise UsageError(f"--target: expected 'embedded' or a ws://, wss://, http:// or https:// "
                         f"base URL, got {target!r}")
    return target


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
        os._exit(3)


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
                    on_result=lambda result: _send(writer, "result", r=result.results),
                    on_metrics=lambda url: _send(writer, "metrics", url=url))
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
    return {"pass": EXIT_OK, "budget": EXIT_BUDGET}.get(merged["verdict"], 1)


def _run_workers(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from orchestrator.scenario.progress import make_reporter
    from orchestrator.scenario.results import format_summary, write_results
    from orchestrator.scenario.runner import RunInputError
    from orchestrator.scenario.workers import WorkerFailed, run_workers

    if args.shard:
        raise UsageError("--workers and --shard do not combine (each worker is a shard)")
    if args.emit_fd is not None:
        raise UsageError("--workers and --emit-fd do not combine")
    scenario = _prepare(args)  # bad input fails here, once, not in every worker
    extra: list[str] = []
    if args.time_scale != 1:
        extra += ["--time-scale", str(args.time_scale)]
    if args.max_cost is not None:
        extra += ["--max-cost", repr(args.max_cost)]
    if args.no_budget:
        extra += ["--no-budget"]
    endpoint = _metrics_endpoint(args)
    scrapes = None
    if endpoint is not None:  # each worker serves a free loopback port; one scrape here sees all
        from orchestrator.metrics_endpoint import WorkerScrapes

        extra += ["--metrics-port", "0", "--metrics-linger", str(args.metrics_linger)]
        scrapes = WorkerScrapes()
        scrapes.attach(endpoint)
    reporter = make_reporter(quiet=args.quiet, json_lines=args.json)

    async def run() -> dict:  # type: ignore[type-arg]
        async with trio.open_nursery() as nursery:
            if endpoint is not None:
                await _start_endpoint(nursery, endpoint, quiet=args.quiet or args.json)
            merged = await run_workers(args.scenario, args.workers, scenario=scenario,
                                       target=args.target, seed=args.seed, extra_args=extra,
                                       on_tick=reporter, on_metrics=scrapes.urls.__setitem__
                                       if scrapes is not None else None)
            if endpoint is not None and args.metrics_linger > 0:
                await _linger(endpoint, args.metrics_linger)
            nursery.cancel_scope.cancel()
        return merged

    try:
        try:
            merged = trio.run(run)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
    except RunInputError as exc:
        raise UsageError(str(exc)) from None
    except WorkerFailed as exc:
        if exc.code == 2:
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
    return {"pass": 0, "budget": EXIT_BUDGET}.get(merged["verdict"], 1)
