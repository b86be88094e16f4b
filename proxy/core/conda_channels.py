"""Conda channels as the proxy serves them: what a path below `/conda/` names, and where each
mirror of the channel's group keeps it.

A channel is `<channel>/<subdir>/<file>`: the index files (`repodata.json` and its compressed
forms, `current_repodata.json`, the CEP-16 shard index), the shards it names
(`shards/<sha256>.msgpack.zst`, content-addressed), and the packages (`.conda`, `.tar.bz2`).
Nothing else is asked of a mirror: a path that names none of these is refused here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from .config import CondaChannel

# `noarch`, or a platform and an architecture: linux-64, osx-arm64, win-64, emscripten-wasm32.
SUBDIR = re.compile(r"noarch|[a-z0-9]+-[a-z0-9_]+")
SHARD_INDEX = "repodata_shards.msgpack.zst"
# conda's `defaults`, in the order conda lists them, where the proxy serves them (pkgs/free
# left them in conda 4.7; pkgs/msys2 is for Windows).
DEFAULT_CHANNELS = ("pkgs/main", "pkgs/r", "pkgs/msys2")
INDEX_FILES = frozenset(
    {
        "repodata.json",
        "repodata.json.zst",
        "repodata.json.bz2",
        "current_repodata.json",
        SHARD_INDEX,
    }
)
# What a client gets for noarch's repodata when no mirror has one: conda asks for noarch on
# every channel, and a channel without noarch packages is still a channel.
EMPTY_REPODATA = frozenset({"repodata.json", "current_repodata.json"})
_SHARD = re.compile(r"shards/([0-9a-f]{64})\.msgpack\.zst")
# `<name>-<version>-<build>.conda` or `.tar.bz2`; one path segment, no leading dot.
_PACKAGE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+!-]*\.(?:conda|tar\.bz2)")
# What the locations in index files become: relative to the file itself (CEP-15, CEP-16), so
# one rewritten copy serves every client, whichever host name it used.
BASE_URL = "./"
SHARDS_BASE_URL = "./shards/"


class Kind(Enum):
    INDEX = "index"  # an index file: cached like a page
    SHARD = "shard"  # immutable, named by its sha256
    PACKAGE = "package"


class NotConda(ValueError):
    """A path below /conda/ that names no file of a served channel (the reason why)."""


@dataclass(frozen=True)
class CondaPath:
    """One file of a channel's subdir."""

    channel: CondaChannel
    subdir: str
    filename: str  # `repodata.json`, `shards/<sha256>.msgpack.zst`, `<package>.conda`
    kind: Kind

    @property
    def shard_sha256(self) -> str:
        match = _SHARD.fullmatch(self.filename)
        assert match is not None, self.filename
        return match[1]

    @property
    def name(self) -> str:
        """How it is shown: `conda-forge/linux-64/repodata.json`."""
        return f"{self.channel.name}/{self.subdir}/{self.filename}"

    def url_on(self, mirror: str) -> str:
        """Where a mirror of the channel's group keeps this file."""
        return f"{self.channel.url_on(mirror)}{self.subdir}/{self.filename}"


def conda_path(channels: Iterable[CondaChannel], path: str) -> CondaPath:
    """The file `path` (below `/conda/`) names; NotConda saying why it names none."""
    channel = next(
        (c for c in sorted(channels, key=lambda c: -len(c.name)) if path.startswith(c.name + "/")),
        None,
    )
    if channel is None:
        raise NotConda(f"no conda channel served at /conda/{path.partition('/')[0]}/")
    subdir, _, filename = path[len(channel.name) + 1 :].partition("/")
    if not SUBDIR.fullmatch(subdir):
        raise NotConda(f"{channel.name}: not a conda subdir: {subdir!r}")
    if filename in INDEX_FILES:
        kind = Kind.INDEX
    elif _SHARD.fullmatch(filename):
        kind = Kind.SHARD
    elif _PACKAGE.fullmatch(filename):
        kind = Kind.PACKAGE
    else:
        raise NotConda(f"{channel.name}/{subdir}: not a conda index file or package: {filename!r}")
    return CondaPath(channel, subdir, filename, kind)


def is_package_filename(filename: str) -> bool:
    return _PACKAGE.fullmatch(filename) is not None
