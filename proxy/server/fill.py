"""Downloading a file from upstream once, into the blob store, while clients read it.

A fill runs detached from the request that started it: it writes a `.part` file and hashes
as it goes; every client reads the growing file by offset. The last byte is held back from
clients until the size and sha256 are verified and the file committed, so a broken or corrupt
download is never seen as complete: the clients' bodies are cut short instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio
import diskcache

from ..core.config import Upstream
from ..core.health import MirrorHealth
from ..core.model import FileLink, ProjectPage
from ..core.wheel import Missing, NoMetadata, SparseFile, core_metadata
from .blobs import BlobStore
from .flight import SingleFlight
from .locks import FileLocks
from .memory import CHUNKS
from .pages import LEARNED
from .upstream import Download, NotFoundUpstream, UpstreamClient, UpstreamError

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

log = logging.getLogger("pypi_proxy.fill")

CHUNK = 1024 * 1024
# Files up to this size reach clients only once verified; larger ones stream as they arrive.
VERIFIED_FIRST = 1024 * 1024
# Requests one fill makes to a source that keeps breaking off, before it tries the next.
ATTEMPTS_PER_SOURCE = 3
# Reading a wheel's metadata by ranges: at least this many bytes a request, this many rounds.
RANGE_READ = 256 * 1024
RANGE_ROUNDS = 6
# How often a process following another's download looks at its progress.
FOLLOW_INTERVAL = 0.05


def file_key(link: FileLink) -> str:
    """What names a file in flight: its sha256, or, for files listed without one, a digest of
    its URL."""
    return link.sha256 or hashlib.sha256(link.url.encode()).hexdigest()


def _hash_into(digest: Hash, path: Path) -> int | None:
    """Feed an existing file into `digest`; its size, or None if there is no such file."""
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
            return f.tell()
    except FileNotFoundError:
        return None


class FillFailed(UpstreamError):
    """The download broke or did not verify; nothing was cached."""


class Fill:
    """One download in progress, observable by any number of readers."""

    def __init__(self, filename: str, key: str, part: Path) -> None:
        self.filename = filename
        self.key = key
        self.part = part
        # Names this download's bytes (the ETag clients get while it streams): a client that
        # resumes with it after a failed download must not have its bad prefix completed.
        self.token = uuid.uuid4().hex[:16]
        self.size: int | None = None  # the expected total, once known
        self.written = 0
        self.path: Path | None = None  # the committed blob, once verified
        self.error: BaseException | None = None
        self.started = asyncio.Event()  # set once upstream answered (or the fill failed)
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _readable(self) -> int:
        """How far clients may read now: everything written, except the last byte of the
        file until it is verified (with the size unknown, any byte may be the last). A small
        file is held back whole until then: it takes no time to arrive, and a client that
        unpacks while it downloads (uv) then never sees a byte that turns out to be bad."""
        if self.size is not None:
            return 0 if self.size <= VERIFIED_FIRST else min(self.written, self.size - 1)
        return max(self.written - 1, 0)

    async def wait(self) -> Path:
        """The committed file, once the download is verified."""
        while self.path is None:
            if self.error is not None:
                raise FillFailed(f"{self.filename}: {self.error}")
            await self._changed.wait()
        return self.path

    async def body(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes `start` to `end` (exclusive; None: to the end) as they arrive; raises
        FillFailed (cutting the response short) if the download breaks or does not verify."""
        offset = start
        with CHUNKS.chunk() as size:
            while end is None or offset < end:
                if self.error is not None:
                    raise FillFailed(f"{self.filename}: {self.error}")
                if self.path is not None:
                    async for chunk in read_file(self.path, offset, end, size):
                        yield chunk
                    return
                limit = self._readable() if end is None else min(self._readable(), end)
                chunk = b""
                if offset < limit:
                    try:
                        chunk = await anyio.to_thread.run_sync(
                            _read_at, self.part, offset, min(limit - offset, size)
                        )
                    except FileNotFoundError:
                        continue  # committed or failed meanwhile: the next round says which
                if not chunk:
                    await self._changed.wait()
                    continue
                offset += len(chunk)
                yield chunk


async def read_file(
    path: Path, offset: int = 0, end: int | None = None, size: int = CHUNK
) -> AsyncIterator[bytes]:
    """A committed file's bytes from `offset` to `end`, through one open handle: a file
    evicted meanwhile stays readable to the end (POSIX) or is not evicted (Windows)."""
    f = await anyio.open_file(path, "rb")
    try:
        await f.seek(offset)
        while end is None or offset < end:
            chunk = await f.read(size if end is None else min(size, end - offset))
            if not chunk:
                return
            offset += len(chunk)
            yield chunk
    finally:
        await f.aclose()


def _read_at(path: Path, offset: int, length: int) -> bytes:
    # A part file is opened per read, not held: on Windows an open handle would block the
    # rename that commits it.
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


class Fills:
    """All downloads of this process: one per file at a time, shared by its readers; and,
    through a lock per file, one per file across the worker processes sharing the cache."""

    def __init__(
        self, store: BlobStore, db: diskcache.Cache, client: UpstreamClient, locks: FileLocks
    ) -> None:
        self._store = store
        self._db = db
        self._client = client
        self._locks = locks
        self._active: dict[str, Fill] = {}
        self._metadata: SingleFlight[Path] = SingleFlight()
        self._tasks: set[asyncio.Task[None]] = set()
        # Sources that sent bytes not matching a file's listed hash, passed over next time.
        self._corrupt: dict[str, set[str]] = {}

    def cached(self, link: FileLink) -> Path | None:
        """The committed blob of this file, if any (marked as just used)."""
        path = self._store.find(link.sha256 or self._db.get(("sha256", link.url)))
        if path is not None:
            self._store.touch(path)
        return path

    def in_flight(self) -> int:
        return len(self._active)

    def downloads(self) -> list[Fill]:
        """The downloads under way in this process."""
        return list(self._active.values())

    def under_way(self, link: FileLink) -> bool:
        return file_key(link) in self._active

    async def make_room(self, link: FileLink) -> bool:
        """Whether the file fits in the cache, once least recently used files are evicted."""
        size = link.size or 0
        if self._store.has_room(size):
            return True
        await anyio.to_thread.run_sync(self._store.evict, size)
        return self._store.has_room(size)

    def start(self, upstream: Upstream, page: ProjectPage, link: FileLink) -> Fill:
        """The download of this file: the one under way, or a new one."""
        key = file_key(link)
        fill = self._active.get(key)
        if fill is None:
            fill = self._active[key] = Fill(link.filename, key, self._store.part(key))
            task = asyncio.create_task(
                self._run(fill, upstream, page, link), name=f"fill {link.filename}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _: self._active.pop(key, None))
        return fill

    async def _run(self, fill: Fill, upstream: Upstream, page: ProjectPage, link: FileLink) -> None:
        try:
            while not await self._own(fill, upstream, page, link):
                await self._follow(fill, link)
                if fill.path is not None:
                    return
        except BaseException as exc:
            fill.error = exc
            if isinstance(exc, Exception):
                log.warning("download of %s failed: %s", link.filename, exc)
            else:
                raise
        finally:
            fill.started.set()
            fill._notify()

    async def _own(self, fill: Fill, upstream: Upstream, page: ProjectPage, link: FileLink) -> bool:
        """Download the file if no other process is at it (False if one is)."""
        if not self._locks.acquire(fill.key):
            return False
        try:
            fill.path = self.cached(link)  # committed by another process meanwhile
            if fill.path is None:
                await self._fetch(fill, upstream, page, link)
            return True
        except BaseException:
            self._store.discard_part(fill.key)
            raise
        finally:
            self._locks.release(fill.key)

    async def _fetch(
        self, fill: Fill, upstream: Upstream, page: ProjectPage, link: FileLink
    ) -> None:
        followed = fill.written
        digest = hashlib.sha256()
        # A part left by a process that died while downloading is taken over where it
        # stopped; one gone while we followed it means that download failed.
        held = await anyio.to_thread.run_sync(_hash_into, digest, fill.part)
        if followed and held is None:
            raise FillFailed("the process downloading it gave up")
        fill.written = held or 0
        with open(fill.part, "ab", buffering=0) as out:
            mirror, url = await self._download(fill, out, digest, upstream, page, link)
            await anyio.to_thread.run_sync(os.fsync, out.fileno())
        sha256 = digest.hexdigest()
        if link.sha256 is not None and sha256 != link.sha256:
            self._corrupt.setdefault(link.sha256, set()).add(url)
            self._client.mark_corrupt(mirror, f"{link.filename}: bytes do not match sha256")
            raise FillFailed(f"sha256 mismatch from {url}: got {sha256}")
        if link.sha256 is None:  # learned: pages list it with its hash from now on
            self._db.set(("sha256", link.url), sha256)
            self._db.incr(LEARNED, default=0)
        fill.path = self._store.commit(fill.key, sha256)
        fill.size = fill.written
        self._corrupt.pop(sha256, None)
        if not self._store.has_room(0):  # the new file is read right away: it stays
            await anyio.to_thread.run_sync(self._store.evict, 0, fill.path)
        log.info("cached %s (%d bytes, sha256 %s)", link.filename, fill.written, sha256)

    async def _follow(self, fill: Fill, link: FileLink) -> None:
        """Another process downloads the file: mirror its progress from the part file until
        it is committed, or the other process lets go of it."""
        while True:
            fill.path = self.cached(link)
            if fill.path is not None:
                fill.size = fill.written = fill.path.stat().st_size
                return
            size = self._store.read_size(fill.key)
            if size is not False:
                fill.size = size
                fill.started.set()
            written = self._store.part_size(fill.key)
            if written is not None and written != fill.written:
                fill.written = written
                fill._notify()
            if self._locks.acquire(fill.key):
                self._locks.release(fill.key)
                return
            await asyncio.sleep(FOLLOW_INTERVAL)

    async def _download(
        self,
        fill: Fill,
        out: BinaryIO,
        digest: Hash,
        upstream: Upstream,
        page: ProjectPage,
        link: FileLink,
    ) -> tuple[MirrorHealth, str]:
        """Write the file into `out`, from the first source that works. A body that breaks
        off resumes where it stopped (`Range`, with `If-Range` on the same source), on the
        same source while it makes progress (a few times), else on the next; the sha256 over
        the whole file keeps the splice safe. Returns the source that delivered the end."""
        error: Exception = UpstreamError(
            f"{upstream.name}: no mirror to fetch {link.filename} from",
            self._client.next_probe(upstream),
        )
        validator: tuple[str, str] | None = None  # the last response's (url, ETag)
        async for mirror, url in self._sources(upstream, page, link):
            for _ in range(ATTEMPTS_PER_SOURCE):
                before = fill.written
                if_range = validator[1] if validator and validator[0] == url else None
                try:
                    async with self._client.download(
                        mirror, url, offset=fill.written, if_range=if_range
                    ) as download:
                        validator = (url, download.validator) if download.validator else None
                        _expect_size(fill, link, download.total)
                        if not fill.started.is_set():
                            self._store.write_size(fill.key, fill.size)
                            fill.started.set()
                        await _append(fill, out, digest, download)
                    if fill.size is None or fill.written == fill.size:
                        return mirror, url
                    error = UpstreamError(f"{url}: ended at byte {fill.written} of {fill.size}")
                except NotFoundUpstream as exc:
                    error = exc
                    break
                except UpstreamError as exc:
                    error = exc
                if fill.written == before:
                    break  # no progress from this source: try the next
                log.info("%s: resuming at byte %d from %s", link.filename, fill.written, url)
        raise error

    async def _sources(
        self, upstream: Upstream, page: ProjectPage, link: FileLink
    ) -> AsyncIterator[tuple[MirrorHealth, str]]:
        """The file's sources, those that lately sent bytes not matching its hash last."""
        corrupt = self._corrupt.get(link.sha256 or "", set())
        deferred = []
        async for mirror, url in self._client.file_sources(upstream, page, link):
            if url in corrupt:
                deferred.append((mirror, url))
            else:
                yield mirror, url
        for source in deferred:
            yield source

    async def metadata(self, upstream: Upstream, page: ProjectPage, link: FileLink) -> Path:
        """The PEP 658 `.metadata` file of a wheel: the upstream's (verified against its
        hash) where it offers one, else read out of the wheel itself."""
        expected = link.metadata_sha256 or None
        found = self._store.find(expected or self._db.get(("metadata", link.url)))
        if found is not None:
            return found
        return await self._metadata.run(
            link.url, lambda: self._fetch_metadata(upstream, page, link, expected)
        )

    async def _fetch_metadata(
        self, upstream: Upstream, page: ProjectPage, link: FileLink, expected: str | None
    ) -> Path:
        data = None
        if link.metadata_sha256 is not None:  # the upstream offers its own
            data = await self._upstream_metadata(upstream, page, link, expected)
        if data is None:
            data = await self._metadata_from_wheel(upstream, page, link)
        sha256 = hashlib.sha256(data).hexdigest()
        if expected and sha256 != expected:
            raise UpstreamError(f"{link.filename}: no metadata matching the advertised hash")
        path = await anyio.to_thread.run_sync(self._store.put, data, sha256)
        if not expected:  # learned: pages offer it with its hash from now on
            self._db.set(("metadata", link.url), sha256)
            self._db.incr(LEARNED, default=0)
        return path

    async def _upstream_metadata(
        self, upstream: Upstream, page: ProjectPage, link: FileLink, expected: str | None
    ) -> bytes | None:
        async for mirror, url in self._client.file_sources(upstream, page, link):
            try:
                data = await self._client.fetch_small(mirror, url + ".metadata")
            except (NotFoundUpstream, UpstreamError) as exc:
                log.warning("%s.metadata from %s: %s", link.filename, url, exc)
                continue
            if expected is None or hashlib.sha256(data).hexdigest() == expected:
                return data
            log.warning("%s.metadata from %s: does not match its hash", link.filename, url)
        return None

    async def _metadata_from_wheel(
        self, upstream: Upstream, page: ProjectPage, link: FileLink
    ) -> bytes:
        """METADATA out of the wheel: from disk when it is there, else by reading only its
        end (the central directory and the METADATA entry, which wheels keep last) with a
        few Range requests; from the whole download when no mirror serves ranges."""
        try:
            wheel = self.cached(link)
            if wheel is None:
                data = await self._metadata_by_ranges(upstream, page, link)
                if data is not None:
                    return data
                wheel = await self.start(upstream, page, link).wait()
            with open(wheel, "rb") as f:
                return core_metadata(f, link.filename)
        except NoMetadata as exc:
            raise UpstreamError(str(exc)) from None

    async def _metadata_by_ranges(
        self, upstream: Upstream, page: ProjectPage, link: FileLink
    ) -> bytes | None:
        first = await self._client.read_range(upstream, page, link, f"bytes=-{RANGE_READ}")
        if first is None:
            return None
        start, data, size = first
        wheel = SparseFile(size)
        wheel.add(start, data)
        fetched = len(data)
        for _ in range(RANGE_ROUNDS):
            try:
                metadata = core_metadata(wheel, link.filename)
                log.info("%s: metadata read with %d bytes of ranges", link.filename, fetched)
                return metadata
            except Missing as need:
                end = min(max(need.end, need.start + RANGE_READ), size)
                got = await self._client.read_range(
                    upstream, page, link, f"bytes={need.start}-{end - 1}"
                )
                if got is None:
                    return None
                wheel.add(got[0], got[1])
                fetched += len(got[1])
        return None

    async def aclose(self) -> None:
        await self._metadata.aclose()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _expect_size(fill: Fill, link: FileLink, total: int | None) -> None:
    """Settle the file's size from the listing or the first response; a source whose size
    disagrees is serving another file."""
    known = link.size if link.size is not None else fill.size
    if known is not None and total is not None and total != known:
        raise UpstreamError(f"upstream's file has {total} bytes, expected {known}")
    if fill.size is None:
        fill.size = known if known is not None else total


async def _append(fill: Fill, out: BinaryIO, digest: Hash, download: Download) -> None:
    """Write what the file still lacks from a response, which starts at `download.start`:
    the offset asked for, or 0 when the source ignored the Range (the part already held is
    then skipped)."""
    skip = fill.written - download.start
    async for chunk in download.chunks:
        if skip:
            dropped = min(skip, len(chunk))
            chunk, skip = chunk[dropped:], skip - dropped
            if not chunk:
                continue
        if fill.size is not None and fill.written + len(chunk) > fill.size:
            raise UpstreamError(f"upstream sends more than {fill.size} bytes")
        out.write(chunk)
        digest.update(chunk)
        fill.written += len(chunk)
        fill._notify()
