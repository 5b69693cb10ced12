"""One service object per trio run, started on first use as a system task (the audio clock,
the RTP inbox): :func:`run_service`."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol, TypeVar

import trio

__all__ = ["run_service"]


class _Service(Protocol):
    #: what stopped the service's task (a bug): the next call starts another
    broken: BaseException | None


S = TypeVar("S", bound=_Service)


def run_service(var: trio.lowlevel.RunVar[Any], make: Callable[[], S],
                run: Callable[[S], Awaitable[None]], name: str) -> S:
    """The run's service kept in ``var``; a new one from ``make()``, its ``run`` spawned as a
    system task, when there is none yet or the last one broke."""
    try:
        service = var.get()
        if service.broken is None:
            return service
    except LookupError:
        pass
    service = make()
    var.set(service)
    trio.lowlevel.spawn_system_task(run, service, name=name)
    return service
