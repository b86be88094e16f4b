"""Conda channels beside the PyPI indexes: their index files (`conda_index`), and their shards
and packages as files of the same blob store, downloaded once by the same filler, verified
against the hashes the index files give (`conda_listing`)."""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from pathlib import Path

import anyio

from ..core.conda_channels import SHARD_INDEX, CondaPath, Kind
from ..core.config import Config
from ..core.model import FileLink, FileOrigin, NormalizedName, ProjectPage
from ..core.repodata import PackageRecord
from .conda_files import BadIndexFile, read_shard
from .conda_index import CondaIndex
from .conda_listing import CondaListing
from .locks import FileLocks
from .upstream import UpstreamClient

log = logging.getLogger("pypi_proxy.conda")


class CondaChannels:
    def __init__(self, config: Config, client: UpstreamClient, locks: FileLocks) -> None:
        self._config = config
        self.listing = CondaListing(config.cache_dir / "conda" / "listing.sqlite3")
        self.index = CondaIndex(config, client, self.listing, locks)

    async def aclose(self) -> None:
        await self.index.aclose()
        self.listing.close()

    async def package(self, file: CondaPath) -> FileOrigin | None:
        """Where a package comes from, if a cached index file of its subdir lists it (once
        those being read into the listing are)."""
        find = partial(self.listing.find, file.channel.name, file.subdir, file.filename)
        record = await anyio.to_thread.run_sync(find)
        if record is None:
            await self.index.settled(file)
            record = await anyio.to_thread.run_sync(find)
        if record is None:
            return None
        base = await anyio.to_thread.run_sync(self.index.package_base, file)
        return self._origin(file, record, base)

    async def shard(self, file: CondaPath) -> FileOrigin | None:
        """Where a shard comes from, if the cached shard index of its subdir names it."""
        sha256 = file.shard_sha256
        named = partial(self.listing.shard, file.channel.name, file.subdir, sha256)
        if await anyio.to_thread.run_sync(named) is None:
            return None
        index = dataclasses.replace(file, filename=SHARD_INDEX, kind=Kind.INDEX)
        known = await anyio.to_thread.run_sync(self.index.known, index)
        base = known.shards_base_url if known else None
        record = PackageRecord(file.filename.removeprefix("shards/"), sha256, None, None)
        return self._origin(file, record, base)

    async def served(self, origin: FileOrigin, file: CondaPath) -> None:
        """A package was asked for: counted as its channel's (see `cache stats`)."""
        if origin.link.sha256:
            note = partial(self.listing.served, origin.link.sha256, file.channel.name)
            await anyio.to_thread.run_sync(note)

    async def read_shard(self, file: CondaPath, path: Path) -> None:
        """List the packages of a shard just served, once."""
        channel, subdir, sha256 = file.channel.name, file.subdir, file.shard_sha256
        if await anyio.to_thread.run_sync(self.listing.shard, channel, subdir, sha256):
            return
        limit = self._config.limits.repodata_size
        try:
            records = await anyio.to_thread.run_sync(read_shard, path, limit)
        except BadIndexFile as exc:  # its bytes are those named: the index named a bad one
            log.warning("%s: %s", file.name, exc)
            return
        await anyio.to_thread.run_sync(self.listing.add_shard, channel, subdir, sha256, records)

    def _origin(self, file: CondaPath, record: PackageRecord, base: str | None) -> FileOrigin:
        """A file of the channel: from `base` (where the index file said its files are) on the
        first mirror's account, else from each mirror where the channel's layout puts it."""
        upstream = self._config.upstream(file.channel.upstream)
        name = record.filename
        url = base + name if base else file.url_on(upstream.mirrors[0])
        link = FileLink(name, url, record.sha256, size=record.size, md5=record.md5)
        source = upstream.mirrors[0] if base else ""  # without a base, none is the listing one
        page = ProjectPage(NormalizedName(file.channel.name), source=source)
        elsewhere = tuple((m, file.url_on(m)) for m in upstream.mirrors)
        return FileOrigin(upstream, page, link, elsewhere)
