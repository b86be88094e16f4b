"""Running fills: one download per file at a time, in this process and across the worker
processes that share the cache.

A fill runs as a task of its own, detached from the request that started it. Through a lock
per file, one process downloads (`_own`) while the others follow its part file (`_follow`)
and take over where it stopped if it dies. A download that breaks off resumes with `Range`,
on the same mirror while it makes progress, else on the next (see `transfer`); the sha256
over the whole file keeps the splice safe, and nothing that does not match it is ever
committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio

from ..core.model import FileLink, FileOrigin
from .blobs import BlobStore
from .fill import CHUNK, Fill, FillFailed
from .index_db import IndexDB
from .locks import FileLocks
from .segmented import SegmentedDownload
from .source_race import Source
from .transfer import Delivered, Target, Transfers
from .upstream import UpstreamClient

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

log = logging.getLogger("pypi_proxy.fill")

# How often a process following another's download looks at its progress.
FOLLOW_INTERVAL = 0.05


class CacheFiller:
    def __init__(
        self,
        store: BlobStore,
        db: IndexDB,
        client: UpstreamClient,
        locks: FileLocks,
        segments: tuple[int, int] = (1, 0),
        page_ttl: float = 600.0,
    ) -> None:
        """`segments`: ranges fetched at once of a file of at least that many bytes;
        `page_ttl`: how long the hash learned of a file that may change holds."""
        self._page_ttl = page_ttl
        self._store = store
        self._db = db
        self._client = client
        self._locks = locks
        self._active: dict[str, Fill] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Sources that sent bytes not matching a file's listed hash, passed over next time.
        self._corrupt: dict[str, set[str]] = {}
        self._transfers = Transfers(client, store, segments, self._sources)

    def cached(self, link: FileLink) -> Path | None:
        """The committed blob of this file, if any (marked as just used)."""
        return self._store.use(self._db.sha256_of(link))

    def has_room(self, size: int) -> bool:
        """Whether a file of `size` bytes fits without evicting anything."""
        return self._store.has_room(size)

    def fills(self) -> list[Fill]:
        """The downloads under way in this process."""
        return list(self._active.values())

    def under_way(self, link: FileLink) -> bool:
        return link.key in self._active

    def start(self, origin: FileOrigin) -> Fill:
        """The download of this file: the one under way, or a new one."""
        key = origin.link.key
        fill = self._active.get(key)
        if fill is None or fill.error is not None:  # one that failed may not be gone yet
            fill = self._active[key] = Fill(origin.link.filename, key, self._store.part(key))
            task = asyncio.create_task(self._run(fill, origin), name=f"fill {fill.filename}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _: self._ended(fill))
        return fill

    def _ended(self, fill: Fill) -> None:
        if self._active.get(fill.key) is fill:
            del self._active[fill.key]

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, fill: Fill, origin: FileOrigin) -> None:
        try:
            while not await self._own(fill, origin):
                await self._follow(fill, origin.link)
                if fill.path is not None:
                    return
        except BaseException as exc:
            fill.fail(exc)
            if not isinstance(exc, Exception):
                raise
            log.warning("download of %s failed: %s", fill.filename, exc)

    async def _own(self, fill: Fill, origin: FileOrigin) -> bool:
        """Download the file if no other process is at it (False if one is)."""
        if not self._locks.acquire(fill.key):
            return False
        try:
            committed = self.cached(origin.link)  # by another process meanwhile
            if committed is not None:
                fill.commit(committed)
            else:
                await self._fetch(fill, origin)
            return True
        except BaseException:
            self._store.discard_part(fill.key)
            raise
        finally:
            self._locks.release(fill.key)

    async def _follow(self, fill: Fill, link: FileLink) -> None:
        """Another process downloads the file: mirror its progress from the part file until
        it is committed, or the other process lets go of it."""
        while True:
            committed = self.cached(link)
            if committed is not None:
                fill.commit(committed)
                return
            size = self._store.read_size(fill.key)
            if size is not False:
                fill.begin(size)
            written = self._store.part_size(fill.key)
            if written is not None and written != fill.written:
                fill.advance(written)
            if self._locks.acquire(fill.key):
                self._locks.release(fill.key)
                return
            await asyncio.sleep(FOLLOW_INTERVAL)

    async def _fetch(self, fill: Fill, origin: FileOrigin) -> None:
        link, digest = origin.link, hashlib.sha256()
        # A part left by a process that died while downloading is taken over where it
        # stopped; one gone while we followed it means that download failed.
        self._store.settle_part(fill.key)
        held = await anyio.to_thread.run_sync(_hash_into, digest, fill.part)
        if fill.written and held is None:
            raise FillFailed("the process downloading it gave up")
        fill.advance(held or 0)
        with _open_part(fill.part) as out:
            delivered = await self._transfers.run(Target(fill, out, digest, origin))
            whole = delivered.sources if isinstance(delivered, SegmentedDownload) else [delivered]
            self._client.delivered(whole)
            sha256 = digest.hexdigest()
            repaired = link.sha256 not in (None, sha256) and await self._mismatch(
                link, delivered, sha256
            )
            if link.sha256 is None and link.md5 is not None:
                await self._check_md5(fill, link, delivered)
            if not repaired:
                fill.verified()  # readers need not wait for the disk
            await anyio.to_thread.run_sync(os.fsync, out.fileno())
        if link.sha256 is None:  # learned: pages list it with its hash from now on
            until = time.time() + self._page_ttl if link.mutable else None  # or for a while
            self._db.learn("sha256", link.url, sha256, until)
        path = self._store.commit(fill.key, link.sha256 or sha256)
        self._corrupt.pop(link.sha256 or sha256, None)
        if repaired:  # cached now; but its readers got the bad bytes, and must ask again
            raise FillFailed("bytes that did not match its sha256 were sent; it is repaired")
        fill.commit(path)
        if not self._store.has_room(0):  # the new file is read right away: it stays
            await anyio.to_thread.run_sync(self._store.evict, 0, fill.path)
        log.info("cached %s (%d bytes, sha256 %s)", link.filename, fill.written, sha256)

    async def _mismatch(self, link: FileLink, delivered: Delivered, sha256: str) -> bool:
        """The bytes do not match the listed sha256. Those who sent them are passed over from
        now on; True if a segmented download could be repaired, else FillFailed."""
        assert link.sha256 is not None
        if isinstance(delivered, SegmentedDownload):
            sources, wrong = delivered.sources, await delivered.repair(link.sha256)
        else:
            sources, wrong = [delivered], None
        for mirror, url in sources if wrong is None else wrong:
            self._corrupt.setdefault(link.sha256, set()).add(url)
            await self._client.sent_corrupt(mirror, link)
        if wrong is None:
            urls = ", ".join(url for _, url in sources)
            raise FillFailed(f"sha256 mismatch from {urls}: got {sha256}")
        log.warning("%s: repaired the bytes %s sent wrong", link.filename,
                    ", ".join(url for _, url in wrong))  # fmt: skip
        return True

    async def _check_md5(self, fill: Fill, link: FileLink, delivered: Delivered) -> None:
        """A file listed with an md5 alone (an old conda package): FillFailed if the bytes do
        not match it, those who sent them failed."""
        md5 = await anyio.to_thread.run_sync(_md5_of, fill.part)
        if md5 == link.md5:
            return
        sources = delivered.sources if isinstance(delivered, SegmentedDownload) else [delivered]
        for mirror, _ in sources:
            self._client.mirrors.failed(mirror, f"{link.filename}: bytes do not match md5",
                                        severe=True)  # fmt: skip
        raise FillFailed(f"md5 mismatch: got {md5}, listed {link.md5}")

    async def _sources(self, origin: FileOrigin) -> AsyncGenerator[Source, None]:
        """The file's sources, those that lately sent bytes not matching its hash last."""
        corrupt = self._corrupt.get(origin.link.sha256 or "", set())
        deferred = []
        async for mirror, url in self._client.file_sources(origin):
            if url in corrupt:
                deferred.append((mirror, url))
            else:
                yield mirror, url
        for source in deferred:
            yield source


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    _hash_into(digest, path)
    return digest.hexdigest()


def _hash_into(digest: Hash, path: Path) -> int | None:
    """Feed an existing file into `digest`; its size, or None if there is no such file."""
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
            return f.tell()
    except FileNotFoundError:
        return None


@contextmanager
def _open_part(path: Path) -> Iterator[BinaryIO]:
    """The part file for writing at any offset (appending to what it holds, one stream at
    a time, or at the offsets of several ranges); created if need be."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
    with open(fd, "r+b", buffering=0) as out:
        out.seek(0, os.SEEK_END)
        yield out
