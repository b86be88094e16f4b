"""Where the proxy lets its upstream requests go (see `core.link_targets`): every place a
request is sent to (redirects are followed one by one for this), checked before it is sent
when its host is an address, and by the address actually connected to once it answers.

Whether a mirror is itself inside the network is decided once and then kept: from its URL
when that names an address, else from the first answer of its own host (or, when a link of
its must be judged first, by looking its host up). A mirror that later answers from inside
(its name rebound to an inner address) is refused like any inward link.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urlsplit

import anyio
import httpx

from ..core.health import MirrorHealth
from ..core.link_targets import is_inward
from .errors import UpstreamError

log = logging.getLogger("pypi_proxy.upstream")

LOOKUP_TIMEOUT = 2.0


class LinkRefused(UpstreamError):
    """A request that would lead inside the network; not the mirror's failure."""


class Destinations:
    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inward: dict[str, bool] = {}  # mirror URL -> whether it is inside, once known

    async def before(self, mirror: MirrorHealth, url: str) -> None:
        """Refuse to send to an address inside the network (a host named by name is judged
        once connected, see `after`)."""
        host = urlsplit(url).hostname or ""
        if _is_address(host) and not self._is_mirror_host(mirror, host):
            await self._judge(mirror, url, host)

    async def after(self, mirror: MirrorHealth, response: httpx.Response) -> None:
        """Refuse an answer that came from inside the network (the response is then closed
        by the caller, unread)."""
        address = _server_address(response)
        if address is None:  # not over a socket (a test's transport)
            return
        if self._is_mirror_host(mirror, response.url.host) and mirror.url not in self._inward:
            self._inward[mirror.url] = is_inward(address)  # first contact decides
        await self._judge(mirror, str(response.url), address)

    async def _judge(self, mirror: MirrorHealth, url: str, address: str) -> None:
        if self._allow_private or not is_inward(address) or await self._mirror_inward(mirror):
            return
        reason = f"it leads to {address}, inside the network (links.allow_private)"
        log.warning("refused %s, reached through %s: %s", url, mirror.url, reason)
        raise LinkRefused(f"{url}: refused: {reason}")

    async def _mirror_inward(self, mirror: MirrorHealth) -> bool:
        if mirror.url not in self._inward:
            host = urlsplit(mirror.url).hostname or ""
            addresses = [host] if _is_address(host) else await _look_up(host)
            if addresses:
                self._inward[mirror.url] = any(is_inward(a) for a in addresses)
        return self._inward.get(mirror.url, False)

    @staticmethod
    def _is_mirror_host(mirror: MirrorHealth, host: str) -> bool:
        return host == urlsplit(mirror.url).hostname


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _look_up(host: str) -> list[str]:
    """The host's addresses; none if it cannot be looked up now."""
    try:
        with anyio.fail_after(LOOKUP_TIMEOUT):
            found = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return []
    return [str(sockaddr[0]) for *_, sockaddr in found]


def _server_address(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("server_addr") if stream is not None else None
    return str(address[0]) if address else None
