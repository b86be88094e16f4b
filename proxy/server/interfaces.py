"""This machine's network interfaces and their addresses, read without sending a packet."""

from __future__ import annotations

import ifaddr

from ..core.lan import lan_addresses


def reachable_addresses() -> list[str]:
    """The addresses other machines on the LAN reach this one by, best first."""
    try:
        adapters = ifaddr.get_adapters()
    except OSError:
        return []
    pairs = [
        (adapter.nice_name or adapter.name, ip.ip)
        for adapter in adapters
        for ip in adapter.ips
        if isinstance(ip.ip, str)  # IPv4; IPv6 addresses come as tuples
    ]
    return lan_addresses(pairs)
