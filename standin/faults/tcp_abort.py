"""Close a server-side TCP connection without a WebSocket close frame (fault injection).

ASGI gives an application no handle on its socket, and hypercorn always sends a close frame when
an application ends. To make a connection "drop" the way a crashed peer or a broken network does,
this module finds the accepted socket by its two addresses (the ASGI scope's ``server`` and
``client``) among the process's open descriptors and shuts it down in both directions. The
client then reads end-of-stream with no close frame (WebSocket code 1006); hypercorn sees the same
and cleans up as for any vanished peer. The descriptor itself is left to its owner.

Works where the process's descriptors are listed in ``/proc/self/fd`` (Linux) or ``/dev/fd``
(macOS, BSD); elsewhere :func:`abort_connection` returns False and the caller falls back.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterable, Sequence

__all__ = ["abort_connection"]


def _descriptors() -> Iterable[int]:
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        return sorted(int(n) for n in names if n.isdigit())
    return ()


def _endpoint(address: object) -> tuple[str, int] | None:
    if isinstance(address, (tuple, list)) and len(address) >= 2:
        return (str(address[0]), int(address[1]))
    return None


def abort_connection(server: Sequence[object] | None, client: Sequence[object] | None) -> bool:
    """Shut down the TCP socket whose local/peer addresses are ``server``/``client``."""
    local, peer = _endpoint(server), _endpoint(client)
    if local is None or peer is None:
        return False
    for fd in _descriptors():
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                continue
            if _endpoint(sock.getsockname()) == local and _endpoint(sock.getpeername()) == peer:
                sock.shutdown(socket.SHUT_RDWR)
                return True
        except OSError:
            continue
        finally:
            sock.detach()
    return False
