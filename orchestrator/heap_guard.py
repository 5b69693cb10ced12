"""A long-run guard: warn once when the process grows past a size, naming the biggest store.

``rtfleet run`` and ``rtfleet serve`` run :func:`watch_heap` beside their work. Every
``every`` seconds it reads the process's resident size (``/proc/self/statm``; ``resource``'s
peak elsewhere) and, the first time it passes ``limit_mb``, prints one line on stderr with the
biggest of the stores it was given, e.g.::

    rtfleet: warning: process size 1032 MB passed --heap-warn-mb 1024; biggest store: server
    records, 15.9 MB in 812 closed records

A store is ``(name, bytes, detail)`` from a callable, so the guard never imports what it
watches. It never stops anything: it only says so, once.

It also hands freed memory back to the system every ``trim_every`` seconds (glibc's
``malloc_trim(0)``, ~1 ms). A run that starts and ends sessions for hours frees as much as it
allocates, but glibc keeps the freed pages of its heaps and of each thread's arena: measured
in ``bench/soak.py``'s hour-long run, the client's live Python objects grew 1 MB while its
resident size grew 12 MB, the rest being free space glibc held. Elsewhere (musl, macOS) there
is nothing to call and the guard only watches.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from collections.abc import Callable, Iterable
from typing import TextIO

import trio

__all__ = ["DEFAULT_HEAP_WARN_MB", "DEFAULT_TRIM_EVERY", "Store", "rss_bytes", "check_heap",
           "malloc_trim", "server_stores", "watch_heap"]

DEFAULT_HEAP_WARN_MB = 1024
DEFAULT_TRIM_EVERY = 60.0
Store = tuple[str, int, str]


def rss_bytes() -> int:
    """The process's resident size now (Linux), else its peak."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _find_malloc_trim() -> Callable[[], object] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


#: glibc's ``malloc_trim(0)``: give every arena's free pages back to the system (None where the
#: C library has none)
malloc_trim = _find_malloc_trim()


def check_heap(size: int, limit_mb: float, stores: Callable[[], Iterable[Store]]) -> str | None:
    """The warning to print when ``size`` passes ``limit_mb`` (None below it); ``stores`` is
    asked only then."""
    if size <= limit_mb * 2**20:
        return None
    ranked = sorted(stores(), key=lambda s: s[1], reverse=True)
    biggest = (f"; biggest store: {ranked[0][0]}, {ranked[0][1] / 2**20:.1f} MB {ranked[0][2]}"
               if ranked else "")
    return (f"rtfleet: warning: process size {size / 2**20:.0f} MB passed --heap-warn-mb "
            f"{limit_mb:g}{biggest}")


async def watch_heap(limit_mb: float, stores: Callable[[], Iterable[Store]], *,
                     every: float = 5.0, size: Callable[[], int] = rss_bytes,
                     out: TextIO | None = None, trim_every: float = DEFAULT_TRIM_EVERY,
                     trim: Callable[[], object] | None = malloc_trim) -> None:
    """Until cancelled: warn once (on ``out``, default stderr) when the size passes the limit,
    and call ``trim`` every ``trim_every`` seconds. Returns after the warning when there is
    nothing to trim (``trim`` None or ``trim_every`` 0)."""
    trimming = trim is not None and trim_every > 0
    next_trim = trio.current_time() + trim_every
    warned = False
    while True:
        if not warned:
            message = check_heap(size(), limit_mb, stores)
            if message is not None:
                print(message, file=out or sys.stderr, flush=True)
                warned = True
                if not trimming:
                    return
        if trimming and trio.current_time() >= next_trim:
            trim()  # type: ignore[misc]
            next_trim += trim_every
        if warned:
            await trio.sleep_until(next_trim)
        else:
            await trio.sleep(every)


def server_stores(server: object) -> list[Store]:
    """What an embedded server keeps (``standin.EmbeddedServer``, read by attribute)."""
    stats = getattr(server, "stats", None)
    records = getattr(server, "connections", [])
    closed = sum(1 for r in records if r.closed.is_set())
    out: list[Store] = [("server records", getattr(stats, "record_bytes", 0),
                         f"in {closed} closed records ({len(records) - closed} live)")]
    secrets = getattr(server, "secrets", None)
    if secrets is not None:
        out.append(("client secrets", 512 * len(secrets), f"{len(secrets)} unexpired secrets"))
    return out
