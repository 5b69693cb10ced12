"""``rtfleet``: the command line.

Exit codes are listed in :mod:`orchestrator.exits` and decided in :func:`main`, nowhere else:
the commands raise :class:`~orchestrator.exits.UsageError` or
:class:`~orchestrator.exits.RunFailed`, or return a code from that module.

Every option can also come from the environment as ``RTFLEET_<OPTION>`` (e.g.
``RTFLEET_PORT=8765``); precedence is scenario file < environment < command-line flag.
User errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from orchestrator.heap_guard import DEFAULT_HEAP_WARN_MB
from orchestrator.exits import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_THRESHOLDS,
    EXIT_USAGE,
    RunFailed,
    UsageError,
)

__all__ = ["main", "main_entry", "EXIT_OK", "EXIT_THRESHOLDS", "EXIT_USAGE", "EXIT_RUNTIME",
           "EXIT_INTERRUPTED"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"RTFLEET_{name.upper().replace('-', '_')}", default)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rtfleet")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rtfleet", description="Run and supervise fleets of realtime voice sessions.")
    parser.add_argument("--version", action="version", version=f"rtfleet {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run a scenario (load or chaos) and check its thresholds")
    run.add_argument("scenario", help="scenario YAML file")
    out = run.add_argument_group("output")
    out.add_argument("--out", default=_env("out"), help="write results.json (and report) to DIR [RTFLEET_OUT]")
    out.add_argument("--quiet", "-q", action="store_true", default=_env("quiet") == "1",
                     help="print only the summary [RTFLEET_QUIET=1]")
    out.add_argument("--json", action="store_true", default=_env("json") == "1",
                     help="print JSON lines instead of text [RTFLEET_JSON=1]")
    out.add_argument("--trace-file", default=_env("trace_file"),
                     help="write OpenTelemetry spans as JSON lines to FILE [RTFLEET_TRACE_FILE]")
    out.add_argument("--heap-warn-mb", type=float, default=_float_env("heap_warn_mb", DEFAULT_HEAP_WARN_MB),
                     help="warn once when the process passes this many MB, naming its biggest "
                          f"store (default {DEFAULT_HEAP_WARN_MB}; 0 turns the warning off; freed memory "
                          "still goes back to the system every minute) "
                          "[RTFLEET_HEAP_WARN_MB]")
    _metrics_options(run)
    spend = run.add_argument_group("spend")
    spend.add_argument("--max-cost", type=float, default=_float_env("max_cost", None), metavar="USD",
                       help="stop the run when it has spent this much at the price table's "
                            "prices (overrides the scenario's budget.max_cost; exit 4) "
                            "[RTFLEET_MAX_COST]")
    spend.add_argument("--no-budget", action="store_true", default=_env("no_budget") == "1",
                       help="run against a hosted target with no budget [RTFLEET_NO_BUDGET=1]")
    tgt = run.add_argument_group("target")
    tgt.add_argument("--target", default=_env("target"),
                     help="override the scenario target: 'embedded' or a base URL [RTFLEET_TARGET]")
    tgt.add_argument("--seed", type=int, default=_int_env("seed"), help="random seed [RTFLEET_SEED]")
    scale = run.add_argument_group("scale-out")
    scale.add_argument("--workers", type=int, default=_int_env("workers", 1),
                       help="run N worker processes, each with a shard of the load, and merge "
                            "their results [RTFLEET_WORKERS]")
    scale.add_argument("--shard", default=_shard_env(),
                       help="run only shard I/N of the load (1-based); also from RTFLEET_SHARD, or "
                            "JOB_COMPLETION_INDEX (0-based) with RTFLEET_SHARD_COUNT")
    # internal, for the children of --workers (see orchestrator/scenario/workers.py)
    scale.add_argument("--emit-fd", type=int, default=None, help=argparse.SUPPRESS)
    scale.add_argument("--client-faults-only", action="store_true", help=argparse.SUPPRESS)
    tgt.add_argument("--time-scale", type=float, default=float(_env("time_scale", "1")),
                     help="multiply the schedule (phases, pauses, fault times) by this factor, "
                          "e.g. 0.1 for a quick rehearsal [RTFLEET_TIME_SCALE]")

    live = run.add_argument_group("live page")
    live.add_argument("--ui", type=int, default=_int_env("ui"), metavar="PORT",
                      help="serve a live page of the run's report on PORT (0 picks one; the URL "
                           "is printed) that updates its plots every second and shows the final "
                           "report at the end [RTFLEET_UI]")
    live.add_argument("--ui-host", default=_env("ui_host", "127.0.0.1"), metavar="HOST",
                      help="bind address of the live page (default 127.0.0.1; anything else "
                           "makes the page reachable from other hosts) [RTFLEET_UI_HOST]")
    live.add_argument("--ui-linger", type=float, default=_float_env("ui_linger", 0.0),
                      metavar="SECONDS",
                      help="after the run, keep serving the final report until a browser has "
                           "loaded it, at most SECONDS (default 0: the page stops with the "
                           "run) [RTFLEET_UI_LINGER]")

    validate = sub.add_parser("validate", help="check a scenario file and exit")
    validate.add_argument("scenario")
    validate.add_argument("--estimate", action="store_true",
                          help="also print what the scenario should cost, at list prices, before "
                               "anything connects")

    report = sub.add_parser(
        "report", help="rebuild report.html from DIR/results.json, or 'report merge DIR... --out DIR'")
    report.add_argument("directories", nargs="+", metavar="DIR",
                        help="a directory written by 'rtfleet run --out DIR' (or: merge DIR DIR ...)")
    report.add_argument("--out", help="with merge: where to write the merged results and report")

    serve = sub.add_parser("serve", help="run the embedded realtime-compatible server alone")
    serve.add_argument("--host", default=_env("host", "127.0.0.1"), help="bind address [RTFLEET_HOST]")
    serve.add_argument("--port", type=int, default=_int_env("port", 8765), help="port [RTFLEET_PORT]")
    serve.add_argument("--api-key", default=_env("server_api_key"),
                       help="standard key the server accepts (default: generated into a 0600 "
                            "file whose path is printed) [RTFLEET_SERVER_API_KEY]")
    serve.add_argument("--webrtc", choices=("auto", "on", "off"), default=_env("webrtc", "auto"),
                       help="WebRTC calls endpoint: auto (when aiortc is installed, loaded on the "
                            "first call), on, off [RTFLEET_WEBRTC]")
    serve.add_argument("--heap-warn-mb", type=float, default=_float_env("heap_warn_mb", DEFAULT_HEAP_WARN_MB),
                       help="warn once when the process passes this many MB, naming its "
                            f"biggest store (default {DEFAULT_HEAP_WARN_MB}; 0 turns the warning off; freed "
                            "memory still goes back to the system every minute) "
                            "[RTFLEET_HEAP_WARN_MB]")
    serve.add_argument("--models", default=_env("models"),
                       help="comma-separated models sessions may use; others are refused with "
                            "model_not_found as the hosted service does (default: the hosted "
                            "Realtime models; '*' accepts any name) [RTFLEET_MODELS]")
    serve.add_argument("--demo-token", default=_env("demo_token"),
                       help="serve the /demo browser page; its key-vending endpoint requires this "
                            "token [RTFLEET_DEMO_TOKEN]")
    serve.add_argument("--model", default=_env("model_rules"), metavar="RULES.yaml",
                       help="answer by the rules in this file (standin/model/rules.py: regex or "
                            "keywords -> a reply or a tool call) and, with pocketsphinx installed "
                            "(rtfleet[voice]), hear spoken words they listen for; default: the "
                            "echo model [RTFLEET_MODEL_RULES]")
    serve.add_argument("--voice", default=_env("voice", "tone"), metavar="tone|speech[:VOICE]",
                       help="how answers sound: 'tone' (a 440 Hz tone, the cheap default for "
                            "load), 'speech' (the words spoken by the espeak-ng program, each "
                            "session's voice as its own espeak-ng voice; 'speech:en-gb' makes one "
                            "espeak-ng voice speak for all) [RTFLEET_VOICE]")
    _serve_extras(serve)
    return parser


def _serve_extras(serve: argparse.ArgumentParser) -> None:
    """``rtfleet serve``'s browser, SIP and fault options (checked in ``serve_setup.py``)."""
    web = serve.add_argument_group("browsers")
    cors_env = _env("cors_origin")
    web.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                     default=cors_env.split(",") if cors_env else None,
                     help="an origin browsers may call /v1/realtime/... from (repeatable): '*' "
                          "(default: any, as the hosted service), scheme://host[:port], or "
                          "'none' (no CORS) [RTFLEET_CORS_ORIGIN, comma-separated]")
    sip = serve.add_argument_group("SIP")
    sip.add_argument("--sip-port", type=int, default=_int_env("sip_port"),
                     help="answer SIP calls (UDP) on this port of --host; 0 picks one "
                          "[RTFLEET_SIP_PORT]")
    sip.add_argument("--sip-accept", default=_env("sip_accept", "auto"), metavar="auto|URL",
                     help="'auto': accept every call with --sip-session; a URL: announce each "
                          "call to that webhook (signed realtime.call.incoming) and let "
                          "POST /v1/realtime/calls/{id}/accept|reject|refer|hangup decide "
                          "[RTFLEET_SIP_ACCEPT]")
    sip.add_argument("--sip-webhook", default=_env("sip_webhook", "realtime"),
                     metavar="realtime|live|both",
                     help="which surface --sip-accept URL announces calls on: 'realtime' "
                          "(realtime.call.incoming, rtc_ ids), 'live' (GPT-Live's "
                          "live.transport.incoming, live_ ids, accepted at "
                          "/v1/live/sessions/{id}/accept) or 'both' (the first accept wins) "
                          "[RTFLEET_SIP_WEBHOOK]")
    sip.add_argument("--sip-session", default=_env("sip_session"), metavar="JSON|@FILE",
                     help="the session config auto-accepted calls get [RTFLEET_SIP_SESSION]")
    sip.add_argument("--sip-accept-timeout", type=float,
                     default=_float_env("sip_accept_timeout", 30.0), metavar="SECONDS",
                     help="an announced call nobody decides on gets 480 after this long "
                          "(default 30) [RTFLEET_SIP_ACCEPT_TIMEOUT]")
    sip.add_argument("--webhook-secret", default=_env("webhook_secret"), metavar="WHSEC",
                     help="the whsec_ secret webhooks are signed with (default: generated into "
                          "a 0600 file whose path is printed) [RTFLEET_WEBHOOK_SECRET]")
    chaos = serve.add_argument_group("faults")
    chaos.add_argument("--faults", default=_env("faults"), metavar="FILE",
                       help="a fault file (YAML: server:, faults: timeline, repeat:) to "
                            "chaos-test your app; POST /_rtfleet/faults (API key) injects one "
                            "now [RTFLEET_FAULTS]")
    _metrics_options(serve)


def _metrics_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("live metrics (Prometheus)")
    group.add_argument("--metrics-port", type=int, default=_int_env("metrics_port"), metavar="PORT",
                       help="serve the OpenTelemetry metrics at http://HOST:PORT/metrics while "
                            "running, for Prometheus (0: a free port) [RTFLEET_METRICS_PORT]")
    group.add_argument("--metrics-host", default=_env("metrics_host", "127.0.0.1"),
                       help="bind address of /metrics; anything but loopback accepts remote "
                            "scrapes (default 127.0.0.1) [RTFLEET_METRICS_HOST]")
    group.add_argument("--metrics-linger", type=float, default=_float_env("metrics_linger", 0.0),
                       metavar="SECONDS",
                       help="after the run, keep /metrics up until one more scrape came (at "
                            "most this long) so Prometheus sees the final figures "
                            "[RTFLEET_METRICS_LINGER]")


def _shard_env() -> str | None:
    shard = _env("shard")
    if shard:
        return shard
    index, count = os.environ.get("JOB_COMPLETION_INDEX"), _env("shard_count")
    if index is not None and count:
        try:
            return f"{int(index) + 1}/{int(count)}"
        except ValueError:
            raise UsageError(f"JOB_COMPLETION_INDEX={index!r} / RTFLEET_SHARD_COUNT={count!r} "
                             "must be integers") from None
    return None


def _float_env(name: str, default: float) -> float:
    value = _env(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"RTFLEET_{name.upper()}={value!r} must be a number") from None


def _int_env(name: str, default: int | None = None) -> int | None:
    value = _env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"RTFLEET_{name.upper()} must be an integer, not {value!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return EXIT_USAGE
        if args.command == "run":
            from orchestrator.commands import run_command

            return run_command(args)
        if args.command == "validate":
            from orchestrator.commands import validate_command

            return validate_command(args)
        if args.command == "report":
            from orchestrator.commands import report_command

            return report_command(args)
        if args.command == "serve":
            from orchestrator.commands import serve_command

            return serve_command(args)
        raise UsageError(f"unknown command {args.command!r}")  # pragma: no cover
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseExceptionGroup as group:  # trio wraps a Ctrl-C that ends a nursery
        _, rest = group.split(KeyboardInterrupt)
        if rest is not None:
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main_entry() -> None:
    sys.exit(main())
