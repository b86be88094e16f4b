"""Conda index files (repodata and the rest, see `core.conda_channels`), cached like index
pages: fresh for `cache.page_ttl`; then served at once while one refresh runs behind, asked
with the upstream's validators (a 304 costs no body), for `stale_while_revalidate` more; and,
with every mirror failing, served for `stale_if_error` rather than not at all.

An answer that a format does not exist (the 404 of a `.zst` TUNA lacks) is kept the same way:
clients probe for it on every channel and subdir, and must get that 404 offline too. Each file
is `conda/index/<channel>/<subdir>/<file>` in the cache, with what is known of it in a JSON
file beside it; both are replaced by a rename, so a reader never sees half of either. One
fetch at a time per file, in this process (single flight) and across the worker processes
(a lock: one fetches, the others wait for what it brings).

A repodata is served as soon as it is in place; its packages are read into the listing after
that (seconds for hundreds of MB, while the client reads it too). Until they are, a request
for a package of that subdir waits for them (`settled`), in whichever process asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from urllib.parse import quote, urljoin

import anyio

from ..core.conda_channels import EMPTY_REPODATA, SHARD_INDEX, CondaPath
from ..core.config import Config
from ..core.model import CacheResult
from .conda_download import WholeDownloads
from .conda_files import Prepared, list_records, prepare
from .conda_listing import CondaListing
from .errors import UpstreamError
from .filler import FOLLOW_INTERVAL
from .flight import SingleFlight
from .locks import FileLocks
from .upstream import UpstreamClient

log = logging.getLogger("pypi_proxy.conda")
# The index files that list packages, the first a subdir's packages are taken from.
LISTING_FILES = ("repodata.json", "repodata.json.zst", "repodata.json.bz2", "current_repodata.json")
# How long a listing still being read is waited for; one older than this was given up (its
# process died) and is read again.
LISTING_WAIT = 120.0


@dataclass(frozen=True)
class Known:
    """What the proxy knows of one index file (kept as JSON beside it)."""

    fetched: float  # when a mirror last answered for it
    found: bool  # False: no mirror has it (a real 404 to clients)
    version: str = ""  # names the bytes held (the ETag clients get)
    etag: str | None = None  # the upstream's validators, to ask again with
    last_modified: str | None = None
    base_url: str | None = None  # where its packages are upstream (absolute), if not beside it
    shards_base_url: str | None = None  # likewise, its shards
    listed: bool = True  # False while its packages are being read into the listing


@dataclass(frozen=True)
class IndexFile:
    """An answer for an index file: its bytes on disk (None: a 404), and how fresh."""

    path: Path | None
    known: Known
    cache: CacheResult


class CondaIndex:
    def __init__(
        self,
        config: Config,
        client: UpstreamClient,
        listing: CondaListing,
        locks: FileLocks,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._downloads = WholeDownloads(client, config.limits.repodata_size)
        self._listing = listing
        self._clock = clock
        self.root = config.cache_dir / "conda" / "index"
        self._flights: SingleFlight[Known] = SingleFlight()
        self._reads: SingleFlight[None] = SingleFlight()
        self._locks = locks

    async def aclose(self) -> None:
        await self._flights.aclose()
        await self._reads.aclose()

    def path(self, file: CondaPath) -> Path:
        return self.root / quote(file.channel.name, safe="") / file.subdir / file.filename

    async def get(self, file: CondaPath) -> IndexFile:
        """The file as the cache holds it, fetched or refreshed as its age says."""
        config = self._config
        known = await anyio.to_thread.run_sync(self._held, file)
        if known is not None:
            age = self._clock() - known.fetched
            if not known.listed and age > LISTING_WAIT:  # the process reading it gave up
                self._reads.start(file.name, partial(self._list, file, known))
            if age < config.page_ttl:
                return self._answer(file, known, CacheResult.HIT)
            if age < config.page_ttl + config.stale_while_revalidate:
                self._flights.start(file.name, partial(self._fetch, file, known))
                return self._answer(file, known, CacheResult.STALE)
        try:
            fetched = await self._flights.run(file.name, partial(self._fetch, file, known))
        except UpstreamError as exc:
            if known is None or self._clock() - known.fetched > (
                config.page_ttl + config.stale_if_error
            ):
                raise
            log.warning("serving a stale copy of %s: %s", file.name, exc)
            return self._answer(file, known, CacheResult.STALE)
        return self._answer(file, fetched, CacheResult.MISS)

    def _answer(self, file: CondaPath, known: Known, cache: CacheResult) -> IndexFile:
        return IndexFile(self.path(file) if known.found else None, known, cache)

    def known(self, file: CondaPath) -> Known | None:
        """What is known of the file, if it was ever asked upstream."""
        try:
            data = json.loads(_meta(self.path(file)).read_text(encoding="utf-8"))
            return Known(**data)
        except (OSError, ValueError, TypeError):
            return None

    def _held(self, file: CondaPath) -> Known | None:
        """What is known of the file, if the cache holds what that says (a file removed by
        hand is fetched again)."""
        known = self.known(file)
        return known if known is None or not known.found or self.path(file).exists() else None

    def package_base(self, file: CondaPath) -> str | None:
        """Where the upstream keeps the packages of the file's subdir, if its index files
        said (an absolute URL); None: beside them, on every mirror."""
        for name in (*LISTING_FILES, SHARD_INDEX):
            known = self.known(dataclasses.replace(file, filename=name))
            if known is not None and known.base_url:
                return known.base_url
        return None

    async def settled(self, file: CondaPath) -> None:
        """Once the index files of the file's subdir that are being read into the listing
        (by this process or another) are, or have been at it for `LISTING_WAIT`."""
        for name in LISTING_FILES:
            listing = dataclasses.replace(file, filename=name)
            while (known := await anyio.to_thread.run_sync(self.known, listing)) is not None:
                if known.listed or self._clock() - known.fetched > LISTING_WAIT:
                    break
                await asyncio.sleep(FOLLOW_INTERVAL)

    async def _fetch(self, file: CondaPath, known: Known | None) -> Known:
        """What is known of the file once the mirrors were asked: by this process, or by
        another that was asking them meanwhile."""
        async with self._locked(file):
            now = await anyio.to_thread.run_sync(self._held, file)
            if now is not None and (known is None or now.fetched > known.fetched):
                return now  # another process fetched it while this one waited
            return await self._ask(file, known)

    @contextlib.asynccontextmanager
    async def _locked(self, file: CondaPath) -> AsyncIterator[None]:
        """The file to this process alone, among the worker processes (waiting its turn)."""
        key = hashlib.sha256(file.name.encode()).hexdigest()
        while not self._locks.acquire(key):
            await asyncio.sleep(FOLLOW_INTERVAL)
        try:
            yield
        finally:
            self._locks.release(key)

    async def _ask(self, file: CondaPath, known: Known | None) -> Known:
        """Ask the channel's mirrors; what is known of the file now."""
        path = self.path(file)
        await anyio.to_thread.run_sync(partial(path.parent.mkdir, parents=True, exist_ok=True))
        # JSON may come compressed on the wire; a compressed file is kept as it is sent.
        headers = {} if file.filename.endswith(".json") else {"Accept-Encoding": "identity"}
        if known is not None and known.found and path.exists():
            if known.etag:
                headers["If-None-Match"] = known.etag
            if known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
        upstream = self._config.upstream(file.channel.upstream)
        ready = partial(self._ready, file, path)
        got = await self._downloads.get(upstream, file.url_on, path, headers, ready)
        now = self._clock()
        if got is None:
            fresh = await self._missing(file, path, now)
        elif got.ready is None:  # the same bytes: listed as they were, unless the listing
            assert known is not None  # lost them (deleted, or its last writes with the power)
            lists = partial(self._listing.lists, file.channel.name, file.subdir)
            listed = known.listed and await anyio.to_thread.run_sync(lists)
            fresh = dataclasses.replace(known, fetched=now, listed=listed)
        else:
            resolve = partial(_absolute, got.url)
            fresh = Known(
                fetched=now,
                found=True,
                version=f"{int(now * 1000):x}-{path.stat().st_size:x}",
                etag=got.etag,
                last_modified=got.last_modified,
                base_url=resolve(got.ready.base_url),
                shards_base_url=resolve(got.ready.shards_base_url),
                listed=file.filename not in LISTING_FILES,
            )
        await anyio.to_thread.run_sync(_write_meta, path, fresh)
        if not fresh.listed:
            self._reads.start(file.name, partial(self._list, file, fresh))
        return fresh

    async def _list(self, file: CondaPath, known: Known) -> None:
        """Read the packages of a repodata in place into the listing; then say so beside it.
        One that cannot be read (or listed) is fetched anew on the next request."""
        path, limit = self.path(file), self._config.limits.repodata_size
        listed = partial(self._listing.add, file.channel.name, file.subdir)
        try:
            count = await anyio.to_thread.run_sync(list_records, file.filename, path, limit, listed)
        except Exception as exc:  # a task of its own: nobody else would hear of it
            log.warning("%s: to be fetched again: %s: %s", file.name, type(exc).__name__, exc)
            await self._noted(file, known, due=True)
            return
        log.info("%s: %d packages listed", file.name, count)
        await self._noted(file, known)

    async def _noted(self, file: CondaPath, known: Known, *, due: bool = False) -> None:
        """Say beside the file that its packages are listed; `due`: that it is to be fetched
        again at once, its validators forgotten (a client may be reading it still: it stays
        in place until then). Unless another fetch replaced it meanwhile."""
        async with self._locked(file):
            current = await anyio.to_thread.run_sync(self.known, file)
            if current is None or current.version != known.version:
                return
            done = dataclasses.replace(current, listed=True)
            if due:
                done = dataclasses.replace(done, fetched=0.0, etag=None, last_modified=None)
            await anyio.to_thread.run_sync(_write_meta, self.path(file), done)

    async def _ready(self, file: CondaPath, path: Path, raw: Path, url: str) -> Prepared:
        """Put what is served of a download in place (made in a worker thread: a rewrite
        of a repodata may take seconds)."""
        limit = self._config.limits.repodata_size
        prepared: Prepared = await anyio.to_thread.run_sync(prepare, file.filename, raw, limit)
        try:
            await self._in_place(file, path, prepared)
        except (OSError, sqlite3.Error) as exc:  # the proxy's own trouble, not the mirror's
            prepared.served.unlink(missing_ok=True)
            raise UpstreamError(f"{file.name}: cannot keep it: {exc}") from None
        return prepared

    async def _in_place(self, file: CondaPath, path: Path, prepared: Prepared) -> None:
        if prepared.shards:
            shards = partial(self._listing.add_shards, file.channel.name, file.subdir)
            await anyio.to_thread.run_sync(shards, prepared.shards)
        await anyio.to_thread.run_sync(os.replace, prepared.served, path)

    async def _missing(self, file: CondaPath, path: Path, now: float) -> Known:
        """No mirror has the file: a 404 from now on, but for noarch's repodata, which every
        client asks for (an empty one, as a channel with no noarch packages has)."""
        if file.subdir != "noarch" or file.filename not in EMPTY_REPODATA:
            with contextlib.suppress(OSError):
                path.unlink()
            return Known(fetched=now, found=False)
        empty = {"info": {"subdir": "noarch"}, "packages": {}, "packages.conda": {},
                 "removed": [], "repodata_version": 1}  # fmt: skip
        part = path.with_name(f".{path.name}.empty")
        await anyio.to_thread.run_sync(part.write_text, json.dumps(empty), "utf-8")
        await anyio.to_thread.run_sync(os.replace, part, path)
        return Known(fetched=now, found=True, version=f"empty-{int(now * 1000):x}")


def _meta(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _write_meta(path: Path, known: Known) -> None:
    meta = _meta(path)
    part = meta.with_name(f".{meta.name}.{uuid.uuid4().hex}.part")  # writers never share one
    part.write_text(json.dumps(asdict(known)), encoding="utf-8")
    os.replace(part, meta)


def _absolute(document_url: str, location: str | None) -> str | None:
    """A location an index file gives, as an absolute URL (`base_url` may be relative to the
    file); None for one that is the file's own folder (where the mirrors keep packages)."""
    if location is None:
        return None
    url = urljoin(document_url, location)
    return None if url == urljoin(document_url, "./") else url
