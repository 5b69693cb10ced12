"""``rtfleet serve``'s browser, SIP and fault options, checked before anything listens.

Each bad value is a :class:`~orchestrator.exits.UsageError` (exit 2, one line, no traceback):

* ``--cors-origin ORIGIN`` (repeatable; ``RTFLEET_CORS_ORIGIN``, comma-separated): ``*`` (the
  default, as the hosted service answers browsers), ``scheme://host[:port]``, or ``none``.
* ``--sip-port PORT`` turns the SIP side on (UDP, on ``--host``, which must then be one IP
  address: it is advertised in Contact and SDP); ``--sip-accept auto`` answers
  every call with ``--sip-session`` (a JSON session config, or ``@FILE``); ``--sip-accept URL``
  announces each call to that webhook (signed ``realtime.call.incoming``) and waits up to
  ``--sip-accept-timeout`` seconds for the REST accept/reject/refer/hangup. The signing secret
  is ``--webhook-secret`` (``RTFLEET_WEBHOOK_SECRET``) or generated into a 0600 file.
* ``--faults FILE``: a fault file (``scenario/fault_file.py``), loaded here so that its errors
  name the file, line and field.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

import attrs

from orchestrator.exits import UsageError

__all__ = ["ServeSetup", "serve_setup"]


@attrs.frozen
class ServeSetup:
    cors_origins: tuple[str, ...] = ("*",)
    sip_port: int | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    sip_session: dict[str, Any] | None = None
    sip_accept_timeout: float | None = 30.0
    sip_webhook_events: tuple[str, ...] = ("realtime.call.incoming",)
    faults: Any = None  # a FaultFile


def serve_setup(args: argparse.Namespace) -> ServeSetup:
    return ServeSetup(cors_origins=_cors(args.cors_origin), **_sip(args), faults=_faults(args.faults))


def _cors(values: list[str] | None) -> tuple[str, ...]:
    from standin.front.cors import check_origin

    if not values:
        return ("*",)
    origins = [o.strip() for v in values for o in v.split(",") if o.strip()]
    if origins == ["none"]:
        return ()
    if "none" in origins:
        raise UsageError("--cors-origin none turns CORS off; it cannot be combined with origins")
    try:
        return tuple(check_origin(o) for o in origins)
    except ValueError as exc:
        raise UsageError(f"--cors-origin: {exc}") from None


def _sip(args: argparse.Namespace) -> dict[str, Any]:
    given = [name for name in ("sip_session", "webhook_secret") if getattr(args, name)]
    if args.sip_port is None:
        if given or args.sip_accept != "auto":
            flag = "--" + (given[0] if given else "sip_accept").replace("_", "-")
            raise UsageError(f"{flag} needs --sip-port (the SIP side is off without it)")
        return {}
    if not 0 <= args.sip_port <= 65535:
        raise UsageError(f"--sip-port must be 0..65535, not {args.sip_port}")
    _check_sip_host(args.host)
    timeout = args.sip_accept_timeout
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--sip-accept-timeout must be more than 0 seconds, not {timeout:g}")
    if args.sip_accept == "auto":
        if getattr(args, "sip_webhook", "realtime") != "realtime":
            raise UsageError("--sip-webhook needs --sip-accept URL (auto sends no webhooks)")
        if args.webhook_secret:
            raise UsageError("--webhook-secret needs --sip-accept URL (auto sends no webhooks)")
        return {"sip_port": args.sip_port, "sip_session": _session(args.sip_session),
                "sip_accept_timeout": timeout}
    url = urlsplit(args.sip_accept)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise UsageError(f"--sip-accept takes 'auto' or a webhook URL (http[s]://host/path), "
                         f"not {args.sip_accept!r}")
    if args.sip_session:
        raise UsageError("--sip-session is for --sip-accept auto; with a webhook the accept "
                         "request's body is the session")
    secret = args.webhook_secret
    if secret is not None and not secret.startswith("whsec_"):
        raise UsageError("--webhook-secret must be a whsec_… signing secret")
    events = _WEBHOOK_EVENTS.get(getattr(args, "sip_webhook", "realtime"))
    if events is None:
        raise UsageError(f"--sip-webhook takes realtime, live or both, not {args.sip_webhook!r}")
    return {"sip_port": args.sip_port, "webhook_url": args.sip_accept, "webhook_secret": secret,
            "sip_accept_timeout": timeout, "sip_webhook_events": events}


#: ``--sip-webhook``: the events announcing a call (``live.transport.incoming`` is GPT-Live's)
_WEBHOOK_EVENTS = {"realtime": ("realtime.call.incoming",), "live": ("live.transport.incoming",),
                   "both": ("realtime.call.incoming", "live.transport.incoming")}


def _check_sip_host(host: str) -> None:
    """The SIP side advertises ``--host`` in its Contact and SDP (where callers send RTP):
    it must be one address, not a wildcard or a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--sip-port needs --host to be an IP address (it is advertised in SIP "
                         f"Contact and SDP), not {host!r}") from None
    if address.is_unspecified:
        raise UsageError(f"--sip-port needs a specific --host address, not {host} (callers are "
                         "told to send media there), e.g. --host 192.168.1.10")


def _session(value: str | None) -> dict[str, Any] | None:
    """The auto-accept session config, checked as the accept request would check it."""
    if value is None:
        return None
    source = "--sip-session"
    text = value
    if value.startswith("@"):
        source = value[1:]
        try:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"{source}: {exc.strerror or exc}") from None
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise UsageError(f"{source}: a session config is a JSON object")
    config.setdefault("type", "realtime")
    if config["type"] != "realtime":
        raise UsageError(f"{source}: type: must be 'realtime'")
    from standin.model.events import ClientError, IdFactory
    from standin.model.realtime import ModelConfig, RealtimeSession

    try:
        RealtimeSession.create(model=config.get("model") or "gpt-realtime", wall_now=0.0,
                               config=ModelConfig(), ids=IdFactory(), initial=config, transport="sip")
    except ClientError as exc:
        where = f"{exc.param}: " if exc.param else ""
        raise UsageError(f"{source}: {where}{exc.message}") from None
    return config


def _faults(path: str | None) -> Any:
    if path is None:
        return None
    from orchestrator.scenario.errors import ScenarioError
    from orchestrator.scenario.fault_file import load_fault_file

    try:
        return load_fault_file(path)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
