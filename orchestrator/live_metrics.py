"""Observable OpenTelemetry instruments of a fleet and of the embedded server.

They are read when a metric reader collects (a Prometheus scrape, an OTLP export), never on
the hot path: a callback walks the fleet's sessions or the server's counters at that moment.

Fleet (``open_fleet(metrics_port=…)``, for embedders; a scenario run records richer metrics of
its own, ``orchestrator/scenario/runmetrics.py``):

==================================  =====================================================
``rtfleet.fleet.sessions``          gauge: sessions by ``rtfleet.session.state`` and
                                    ``rtfleet.transport``
``rtfleet.fleet.connects``          counter: connections made (first and re-)
``rtfleet.fleet.reconnects``        counter: reconnections
``rtfleet.fleet.turns.replayed``    counter: audio turns re-sent after a drop
``rtfleet.fleet.turns.lost``        counter: audio turns a drop lost
==================================  =====================================================

Counters of sessions the fleet forgot (``remove_session(forget=True)``) are kept in a running
total so they never go down.

Server (``rtfleet serve --metrics-port``): ``rtfleet.server.connections`` (counter, opened),
``rtfleet.server.connections.open`` (gauge), ``rtfleet.server.events.sent`` /
``.received``, ``rtfleet.server.errors.sent``, ``rtfleet.server.auth.failures``,
``rtfleet.server.client_secrets.minted``, ``rtfleet.server.calls.answered`` (WebRTC) and
``rtfleet.server.faults`` (by ``rtfleet.fault.kind``: drops, keys rejected, delayed events,
sessions expired, malformed frames).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["observe_fleet", "observe_server"]

STATE = "rtfleet.session.state"
TRANSPORT = "rtfleet.transport"


def observe_fleet(meter: Meter, fleet: Any) -> None:
    def sessions(_: CallbackOptions) -> Iterable[Observation]:
        counts: Counter[tuple[str, str]] = Counter()
        for link in fleet.links.values():
            counts[(link.state.value, link.transport.value)] += 1
        return [Observation(n, {STATE: state, TRANSPORT: transport})
                for (state, transport), n in counts.items()]

    def total(read: Any) -> Any:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(read())]
        return callback

    meter.create_observable_gauge("rtfleet.fleet.sessions", [sessions],
                                  description="sessions by state and transport")
    for name, read, doc in (
            ("connects", lambda: _status_sum(fleet, "connects"), "connections made"),
            ("reconnects", lambda: _status_sum(fleet, "reconnects"), "reconnections"),
            ("turns.replayed", lambda: _core_sum(fleet, "replayed_turns"),
             "audio turns re-sent after a drop"),
            ("turns.lost", lambda: _core_sum(fleet, "lost_turns"), "audio turns a drop lost")):
        meter.create_observable_counter(f"rtfleet.fleet.{name}", [total(read)], description=doc)


def _status_sum(fleet: Any, field: str) -> int:
    live = sum(getattr(child.status, field) for child in fleet.supervisor.children.values())
    return live + fleet.forgotten.get(field, 0)


def _core_sum(fleet: Any, field: str) -> int:
    live = sum(getattr(link.core.counters, field) for link in fleet.links.values())
    return live + fleet.forgotten.get(field, 0)


def observe_server(meter: Meter, server: Any) -> None:
    stats = server.stats

    def counter(name: str, read: Any, doc: str) -> None:
        meter.create_observable_counter(name, [lambda _: [Observation(read())]], description=doc)

    counter("rtfleet.server.connections", lambda: stats.connections_opened, "connections opened")
    meter.create_observable_gauge(
        "rtfleet.server.connections.open",
        [lambda _: [Observation(stats.connections_opened - stats.connections_closed)]],
        description="connections open now")
    counter("rtfleet.server.events.sent", lambda: stats.events_sent, "server events sent")
    counter("rtfleet.server.events.received", lambda: stats.client_events_received,
            "client events received")
    counter("rtfleet.server.errors.sent", lambda: stats.errors_sent, "error events sent")
    counter("rtfleet.server.auth.failures", lambda: stats.auth_failures, "refused keys")
    counter("rtfleet.server.client_secrets.minted", lambda: stats.client_secrets_minted,
            "client secrets minted")
    counter("rtfleet.server.calls.answered", lambda: stats.calls_answered, "WebRTC calls answered")

    def faults(_: CallbackOptions) -> Iterable[Observation]:
        f = stats.faults
        kinds = {"drop": sum(f.drops.values()), "key_rejected": f.keys_rejected,
                 "delayed_event": f.delayed_events, "session_expired": f.sessions_expired,
                 "malformed": sum(f.malformed.values())}
        return [Observation(n, {"rtfleet.fault.kind": kind}) for kind, n in kinds.items()]

    meter.create_observable_counter("rtfleet.server.faults", [faults],
                                    description="faults injected, by kind")
