"""Where the proxy can be reached, from its `listen.host`: a proxy listening on every address
is reached on this machine's LAN addresses (by clients) and on loopback (by commands here)."""

from __future__ import annotations

import socket

from ..core.config import Config
from ..core.lan import EVERY_ADDRESS
from ..server.interfaces import reachable_addresses


def client_urls(config: Config, path: str = "/simple/") -> list[str]:
    """The URLs clients on the LAN use for `path`, one per address of this machine."""
    hosts = lan_addresses() if config.host in EVERY_ADDRESS else [config.host]
    return [f"http://{host}:{config.port}{path}" for host in hosts]


def local_url(config: Config) -> str:
    """The proxy's base URL for a command on this machine."""
    host = config.host
    if host in EVERY_ADDRESS:
        host = "127.0.0.1"  # a proxy listening on every address answers on loopback
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


def lan_addresses() -> list[str]:
    """This machine's addresses on the LAN, read from its network interfaces; its host name
    only when it has none."""
    return reachable_addresses() or [socket.gethostname()]
