"""Where an upstream's links may lead: not into the proxy's own network (see
`server.destinations`, which applies this).

A mirror on the internet that lists (or redirects to) a file on a loopback, link-local or
private address is pointing the proxy at something it should never fetch for a client (a
cloud's metadata service, an admin page on the LAN). Such a link is refused, unless the mirror
is on such an address itself (a lab's own mirror), or the config allows it
(`links.allow_private`). The address judged is the one the proxy actually connected to, so a
host name that resolves inward is caught as well.
"""

from __future__ import annotations

import ipaddress


def is_inward(address: str) -> bool:
    """Whether an IP address is loopback, link-local, private or otherwise not public."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return True  # not an address at all: nothing to trust
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast
