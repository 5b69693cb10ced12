"""ICE host candidates: aioice never offers 127.0.0.1, so loopback peers restrict the list."""

from __future__ import annotations

import contextvars
import ipaddress
from typing import Sequence

import aioice.ice

__all__ = ["host_addresses_for", "is_loopback_host"]


# -- ICE host addresses -----------------------------------------------------------------------

_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "rtfleet_ice_host_addresses", default=None
)
_original_get_host_addresses = aioice.ice.get_host_addresses


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _HOST_ADDRESSES.get()
    if chosen is None:
        return _original_get_host_addresses(use_ipv4, use_ipv6)
    return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


def _install_host_address_hook() -> None:
    """Route aioice's host address lookup through ``_HOST_ADDRESSES`` (idempotent)."""
    if aioice.ice.get_host_addresses is not _get_host_addresses:
        aioice.ice.get_host_addresses = _get_host_addresses


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_addresses_for(
    target_host: str | None, policy: str | Sequence[str] | None = "auto"
) -> tuple[str, ...] | None:
    """The ICE host addresses to offer, or ``None`` for aioice's own list.

    ``policy`` is ``"auto"`` (``("127.0.0.1",)`` when ``target_host`` is loopback — aioice
    would otherwise offer only the machine's other interfaces — else ``None``), ``None``
    (aioice's list), or an explicit sequence of addresses.
    """
    if policy is None:
        return None
    if isinstance(policy, str):
        if policy != "auto":
            raise ValueError(f"host address policy must be 'auto', None or addresses: {policy!r}")
        if not is_loopback_host(target_host):
            return None
        host = (target_host or "").strip("[]")
        return ("::1",) if host == "::1" else ("127.0.0.1",)
    return tuple(policy)
