"""Which of this machine's addresses other machines on the LAN reach it by (pure: the
interfaces are read elsewhere). A host name will not do: on a typical Linux box it resolves
only to 127.0.1.1, and a Windows machine on the LAN usually cannot resolve it at all."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

# `listen.host` values that mean "every address of this machine".
EVERY_ADDRESS = ("0.0.0.0", "::", "")
# Interfaces of containers, VMs and VPN tunnels: their addresses go last.
_VIRTUAL = ("docker", "br-", "veth", "virbr", "vmnet", "vboxnet", "tun", "tap", "wg", "lxc",
            "cni", "flannel", "podman", "zt")  # fmt: skip


def lan_addresses(interfaces: Iterable[tuple[str, str]]) -> list[str]:
    """The IPv4 addresses of `(interface name, address)` pairs that other machines can
    reach, best first: private addresses of real interfaces, then other real ones, then
    those of virtual interfaces. Loopback and link-local addresses are left out."""
    ranked: dict[str, tuple[int, int]] = {}
    for order, (name, text) in enumerate(interfaces):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if address.version != 4 or address.is_loopback or address.is_link_local:
            continue
        virtual = name.lower().startswith(_VIRTUAL)
        rank = 2 if virtual else 0 if address.is_private else 1
        ranked.setdefault(str(address), (rank, order))
    return sorted(ranked, key=ranked.__getitem__)


def is_loopback(host: str) -> bool:
    """Whether a request's host (without its port) names this machine only to itself."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
