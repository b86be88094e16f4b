"""The `conda:` section of the config file: groups of conda mirrors, and the channels served
from them at `/conda/` (see `conda_channels`). Errors name the key path, as in `config_yaml`."""

from __future__ import annotations

import re
from typing import Any

from . import config_values as read
from .config import CondaChannel, ConfigError, Upstream

# A channel's name as conda users write it: `conda-forge`, `pkgs/main`, `pytorch-nightly`;
# the path of one below a mirror likewise (TUNA's `cloud/conda-forge`).
_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)*")


def conda_section(
    value: Any, taken: set[str]
) -> tuple[tuple[Upstream, ...], tuple[CondaChannel, ...]]:
    """`conda: {upstreams: {group: {mirrors: [...]}}, channels: {name: group/path}}`."""
    spec = read.mapping(value, "conda", {"upstreams", "channels"})
    groups = read.mapping(spec.get("upstreams", {}), "conda.upstreams", None)
    upstreams = []
    for name, body in groups.items():
        path = f"conda.upstreams.{name}"
        if not isinstance(name, str) or not read.NAME.fullmatch(name):
            raise ConfigError(f"{path}: upstream names are letters, digits, '.', '_' and '-'")
        if name in taken:
            raise ConfigError(f"{path}: the name of an upstream under upstreams: too")
        mirrors = read.sequence(read.mapping(body, path, {"mirrors"}).get("mirrors"),
                                f"{path}.mirrors")  # fmt: skip
        if not mirrors:
            raise ConfigError(f"{path}.mirrors: needs at least one URL")
        urls = tuple(read.index_url(m, f"{path}.mirrors[{i}]") for i, m in enumerate(mirrors))
        upstreams.append(Upstream(name, urls))
    channels = read.mapping(spec.get("channels", {}), "conda.channels", None)
    known = [u.name for u in upstreams]
    return tuple(upstreams), tuple(_channel(n, v, known) for n, v in channels.items())


def _channel(name: Any, value: Any, known: list[str]) -> CondaChannel:
    """A channel served from `<group>/<path>`: that path below each mirror of the group."""
    path = f"conda.channels.{name}"
    if not isinstance(name, str) or not _CHANNEL.fullmatch(name):
        raise ConfigError(f"{path}: not a channel name (letters, digits, '.', '_', '-', '/')")
    source = read.string(value, path).strip("/")
    if not _CHANNEL.fullmatch(source):
        raise ConfigError(f"{path}: expected <conda upstream>/<path>, got {value!r}")
    group, _, below = source.partition("/")
    if group not in known:
        names = ", ".join(known) or "none"
        raise ConfigError(f"{path}: unknown conda upstream {group!r} (known: {names})")
    return CondaChannel(name, group, below)
