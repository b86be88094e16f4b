"""The setup script the proxy serves at `/setup.py` and `/<index>/setup.py`
(`proxy.client.machine_setup`), written out for one request.

Nothing of the request goes into the script but its `Host`, and only once it is known to be a
host name or address with an optional port. What is written in is a Python literal made by
`repr` of plain data: the script is the same program for every request, only its data differs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .client_setup import condarc
from .config import Config, Index
from .pytorch_builds import TorchOffer, build_cuda

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NAME = rf"(?P<name>{_LABEL}(?:\.{_LABEL})*\.?)"  # IPv4 addresses too
_HOST = re.compile(rf"(?:{_NAME}|\[(?P<ip6>[0-9A-Fa-f:.]+)\])(?::(?P<port>\d{{1,5}}))?")
_SERVED_LINE = re.compile(r"^SERVED: Served = .*$", re.MULTILINE)


def valid_host(host: str) -> bool:
    """Whether a `Host` header is a host name, IPv4 address or bracketed IPv6 address, with
    an optional port: nothing that could end a string or a line in the script."""
    found = _HOST.fullmatch(host)
    if found is None or len(found["name"] or "") > 253:
        return False
    if found["port"] is not None and not 0 < int(found["port"]) < 65536:
        return False
    if found["ip6"] is not None:
        try:
            ipaddress.IPv6Address(found["ip6"])
        except ValueError:
            return False
    return True


@dataclass(frozen=True)
class ScriptProfile:
    """An index as the script chooses among them."""

    name: str
    cuda: tuple[int, int] | None  # what its torch is built for; None: CPU, ROCm, XPU, ...
    torch: str | None  # what it offers of torch, said for people; None: not fetched yet
    default: bool  # the index at /simple/

    def as_data(self) -> dict[str, object]:
        cuda = list(self.cuda) if self.cuda else None
        return {"name": self.name, "cuda": cuda, "torch": self.torch, "default": self.default}


def profile_of(config: Config, index: Index, offer: TorchOffer | None) -> ScriptProfile:
    cuda = build_cuda(index, lambda group: config.upstream(group).mirrors)
    describe = offer.describe() if offer else None
    return ScriptProfile(index.name, cuda, describe, index is config.indexes[0])


def setup_script(
    template: str,
    host: str,
    profiles: list[ScriptProfile],
    pinned: str | None,
    conda_channels: Sequence[str] = (),
) -> str:
    """The script for clients that reached the proxy at `host` (checked by `valid_host`),
    choosing among `profiles`, or set up for the `pinned` one; it shows the `.condarc` for
    the conda channels served."""
    if not valid_host(host):
        raise ValueError(f"not a host: {host!r}")
    # The proxy serves plain http itself; a TLS front end names its own URL (client-config --url).
    rc = condarc(f"http://{host}/conda", conda_channels) if conda_channels else ""
    served = {"base": f"http://{host}", "profiles": [p.as_data() for p in profiles],
              "pinned": pinned, "condarc": rc}  # fmt: skip
    script, count = _SERVED_LINE.subn(lambda _: f"SERVED: Served = {served!r}", template, 1)
    if count != 1:
        raise ValueError("the setup script has no `SERVED: Served = ...` line to write into")
    return script
