"""Whether a host names this machine: the one test behind every "loopback unless you opt in"
rule (``rtfleet serve --host``, ``--metrics-host``, ``--ui-host``, hosted-target budgets)."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (IPv4 127/8, IPv6 ::1; a ``%zone`` suffix ignored)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False
