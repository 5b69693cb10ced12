"""Faults: static ones the embedded server applies all run long (`ServerFaults`), and a
timeline of one-off actions (`FaultEvent`).

Timeline entries in a scenario file name the action with ``action:`` and put its fields
beside it, or use the action as the key::

    faults:
      - {at: 10s, action: drop_connections, percent: 30}
      - at: 20s
        expire_keys: {}
      - {at: 30s, action: add_latency, ms: 250, for: 5s}
      - {at: 40s, action: kill_server, restart_after: 2s}
      - {at: 50s, action: reject_keys, for: 3s}
      - {at: 60s, action: malformed, count: 2}

Only `DropConnections` can run against a remote target (the runner drops its own side);
every other action needs the embedded server.
"""

from typing import Any, ClassVar, Union

import attrs

from .checks import at_least, at_most, optional_seconds, seconds
from .durations import Duration

__all__ = [
    "ServerFaults",
    "DropConnections",
    "ExpireKeys",
    "AddLatency",
    "KillServer",
    "RejectKeys",
    "Malformed",
    "FaultAction",
    "FaultEvent",
    "FAULT_ACTIONS",
]


def _close_code(_instance: Any, attribute: attrs.Attribute, value: int | None) -> None:
    at_least(1000)(_instance, attribute, value)
    at_most(4999)(_instance, attribute, value)


@attrs.frozen
class ServerFaults:
    """What the embedded server does wrong on every connection, all run long (the fields of
    its fault plan, see `plan_fields`)."""

    #: drop a connection right after it has sent this many server events
    drop_after_events: int | None = attrs.field(default=None, validator=at_least(1))
    #: probability per connection per second of a drop (0-1)
    drop_rate: float = attrs.field(default=0.0, validator=[at_least(0), at_most(1)])
    #: drop every connection this long after it connected
    drop_at: Duration | None = attrs.field(default=None, converter=optional_seconds)
    #: how a drop closes: None aborts the TCP connection (the client sees 1006); a code sends
    #: a close frame with it (e.g. 1011, 1012)
    close_code: int | None = attrs.field(default=None, validator=_close_code)
    #: every server event is sent this much later
    latency: Duration = attrs.field(default=0.0, converter=seconds)
    #: sessions expire this long after connecting (``session_expired`` error, close 1001)
    expire_after: Duration | None = attrs.field(default=None, converter=optional_seconds)
    #: after every N server events, one malformed frame
    malformed_every: int | None = attrs.field(default=None, validator=at_least(1))
    #: every authentication fails
    reject_keys: bool = False
    #: at most this many sessions open at once; one more is refused (``rate_limit_exceeded``)
    max_concurrent_sessions: int | None = attrs.field(default=None, validator=at_least(0))
    #: responses asked for once the last minute's tokens reach this get ``rate_limit_exceeded``
    tokens_per_minute: int | None = attrs.field(default=None, validator=at_least(1))
    #: client-secret mints beyond this many a minute get HTTP 429
    mints_per_minute: int | None = attrs.field(default=None, validator=at_least(0))

    @property
    def active(self) -> bool:
        return self != ServerFaults()

    def plan_fields(self, seed: int = 0) -> dict[str, Any]:
        """Keyword arguments for the embedded server's ``FaultPlan``."""
        return {
            "seed": seed,
            "drop_after_events": self.drop_after_events,
            "drop_rate": self.drop_rate,
            "drop_after_s": self.drop_at,
            "drop_mode": "abort" if self.close_code is None else "close",
            "drop_close_code": 1011 if self.close_code is None else self.close_code,
            "reject_keys": self.reject_keys,
            "latency_ms": self.latency * 1000.0,
            "expire_after_s": self.expire_after,
            "malformed_every": self.malformed_every,
            "max_concurrent_sessions": self.max_concurrent_sessions,
            "tokens_per_minute": self.tokens_per_minute,
            "mints_per_minute": self.mints_per_minute,
        }


@attrs.frozen
class DropConnections:
    action: ClassVar[str] = "drop_connections"
    primary: ClassVar[str] = "percent"
    server_side: ClassVar[bool] = False

    #: share of the open connections to drop, 0 < percent <= 100
    percent: float = attrs.field(default=100.0, validator=[at_least(0, strict=True), at_most(100)])


@attrs.frozen
class ExpireKeys:
    """Every key minted so far expires now."""

    action: ClassVar[str] = "expire_keys"
    primary: ClassVar[str | None] = None
    server_side: ClassVar[bool] = True


@attrs.frozen
class AddLatency:
    action: ClassVar[str] = "add_latency"
    primary: ClassVar[str] = "ms"
    server_side: ClassVar[bool] = True

    #: milliseconds added before each server event
    ms: float = attrs.field(validator=at_least(0))
    #: for how long (None: until the end of the run); file key ``for``
    duration: Duration | None = attrs.field(
        default=None, converter=optional_seconds, metadata={"key": "for"}
    )


@attrs.frozen
class KillServer:
    action: ClassVar[str] = "kill_server"
    primary: ClassVar[str] = "restart_after"
    server_side: ClassVar[bool] = True

    #: restart the server after this long (None: it stays down)
    restart_after: Duration | None = attrs.field(default=None, converter=optional_seconds)


@attrs.frozen
class RejectKeys:
    action: ClassVar[str] = "reject_keys"
    primary: ClassVar[str] = "duration"
    server_side: ClassVar[bool] = True

    #: for how long new connections are refused (None: until the end); file key ``for``
    duration: Duration | None = attrs.field(
        default=None, converter=optional_seconds, metadata={"key": "for"}
    )


@attrs.frozen
class Malformed:
    action: ClassVar[str] = "malformed"
    primary: ClassVar[str] = "count"
    server_side: ClassVar[bool] = True

    #: the next ``count`` server events are sent as malformed JSON
    count: int = attrs.field(default=1, validator=at_least(1))


FaultAction = Union[DropConnections, ExpireKeys, AddLatency, KillServer, RejectKeys, Malformed]

#: action name -> class
FAULT_ACTIONS: dict[str, type] = {
    cls.action: cls
    for cls in (DropConnections, ExpireKeys, AddLatency, KillServer, RejectKeys, Malformed)
}


@attrs.frozen
class FaultEvent:
    #: seconds since the start of the run
    at: Duration = attrs.field(converter=seconds)
    action: FaultAction = attrs.field(factory=DropConnections)
