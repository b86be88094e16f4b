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
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import diskcache

from .blobs import BlobStore
from .flight import SingleFlight
from .model import FileLink
from .upstream import NotFoundUpstream, UpstreamClient, UpstreamError
from .wheel import NoMetadata, core_metadata

log = logging.getLogger("pypi_proxy.fill")

CHUNK = 1024 * 1024


class FillFailed(UpstreamError):
    """The download broke or did not verify; nothing was cached."""


class Fill:
    """One download in progress, observable by any number of readers."""

    def __init__(self, filename: str, part: Path) -> None:
        self.filename = filename
        self.part = part
        self.size: int | None = None  # the expected total, once known
        self.written = 0
        self.path: Path | None = None  # the committed blob, once verified
        self.sha256: str | None = None
        self.error: BaseException | None = None
        self.started = asyncio.Event()  # set once upstream answered (or the fill failed)
        self._changed = asyncio.Event()

    @property
    def done(self) -> bool:
        return self.path is not None or self.error is not None

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _readable(self) -> int:
        """How far clients may read now: everything written, except the last byte of the
        file until it is verified (with the size unknown, any byte may be the last)."""
        if self.size is not None:
            return min(self.written, self.size - 1)
        return max(self.written - 1, 0)

    async def wait(self) -> Path:
        """The committed file, once the download is verified."""
        while self.path is None:
            if self.error is not None:
                raise FillFailed(f"{self.filename}: {self.error}")
            await self._changed.wait()
        return self.path

    async def body(self) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive; raises FillFailed (cutting the response short)
        if the download breaks or does not verify."""
        offset = 0
        while True:
            if self.error is not None:
                raise FillFailed(f"{self.filename}: {self.error}")
            if self.path is not None:
                async for chunk in read_file(self.path, offset):
                    yield chunk
                return
            limit = self._readable()
            if offset >= limit:
                await self._changed.wait()
                continue
            try:
                chunk = await anyio.to_thread.run_sync(_read_at, self.part, offset, limit - offset)
            except FileNotFoundError:
                continue  # committed or failed meanwhile: the next round says which
            offset += len(chunk)
            yield chunk


async def read_file(path: Path, offset: int = 0) -> AsyncIterator[bytes]:
    while chunk := await anyio.to_thread.run_sync(_read_at, path, offset, CHUNK):
        offset += len(chunk)
        yield chunk


def _read_at(path: Path, offset: int, length: int) -> bytes:
    # Opened per read, not held: on Windows an open handle would block the commit's rename.
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(min(length, CHUNK))


class Fills:
    """All downloads of this process: one per file at a time, shared by its readers."""

    def __init__(self, store: BlobStore, db: diskcache.Cache, client: UpstreamClient) -> None:
        self._store = store
        self._db = db
        self._client = client
        self._active: dict[str, Fill] = {}
        self._metadata: SingleFlight[Path] = SingleFlight()
        self._tasks: set[asyncio.Task[None]] = set()

    def cached(self, link: FileLink) -> Path | None:
        """The committed blob of this file, if any."""
        return self._store.find(link.sha256 or self._db.get(("sha256", link.url)))

    def start(self, link: FileLink) -> Fill:
        """The download of this file: the one under way, or a new one."""
        key = link.sha256 or link.url
        fill = self._active.get(key)
        if fill is None:
            fill = self._active[key] = Fill(link.filename, self._store.new_part())
            task = asyncio.create_task(self._run(fill, link), name=f"fill {link.filename}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _: self._active.pop(key, None))
        return fill

    async def _run(self, fill: Fill, link: FileLink) -> None:
        try:
            async with self._client.download(link.url) as download:
                if link.size is not None and download.length not in (None, link.size):
                    raise FillFailed(f"upstream sends {download.length} bytes, listed {link.size}")
                fill.size = link.size if link.size is not None else download.length
                fill.started.set()
                digest = hashlib.sha256()
                with open(fill.part, "wb") as out:
                    async for chunk in download.chunks:
                        out.write(chunk)
                        digest.update(chunk)
                        fill.written += len(chunk)
                        if fill.size is not None and fill.written > fill.size:
                            raise FillFailed(f"upstream sent more than {fill.size} bytes")
                        fill._notify()
                    out.flush()
                    await anyio.to_thread.run_sync(os.fsync, out.fileno())
            sha256 = _verified(link, fill, digest.hexdigest())
            fill.path = self._store.commit(fill.part, sha256)
            fill.size, fill.sha256 = fill.written, sha256
            if link.sha256 is None:
                self._db.set(("sha256", link.url), sha256)
            log.info("cached %s (%d bytes, sha256 %s)", link.filename, fill.written, sha256)
        except BaseException as exc:
            fill.error = exc
            fill.part.unlink(missing_ok=True)
            if isinstance(exc, Exception):
                log.warning("download of %s failed: %s", link.filename, exc)
            else:
                raise
        finally:
            fill.started.set()
            fill._notify()

    async def metadata(self, link: FileLink) -> Path:
        """The verified PEP 658 `.metadata` file of a wheel: the upstream's, or, when the
        upstream advertises one it cannot serve, read out of the wheel itself."""
        expected = link.metadata_sha256 or None
        found = self._store.find(expected or self._db.get(("metadata", link.url)))
        if found is not None:
            return found
        return await self._metadata.run(link.url, lambda: self._fetch_metadata(link, expected))

    async def _fetch_metadata(self, link: FileLink, expected: str | None) -> Path:
        data: bytes | None
        try:
            data = await self._client.fetch_small(link.url + ".metadata")
            if expected and hashlib.sha256(data).hexdigest() != expected:
                log.warning("%s.metadata: upstream's does not match its hash", link.filename)
                data = None
        except NotFoundUpstream:
            log.warning("%s.metadata: advertised but missing upstream", link.filename)
            data = None
        if data is None:
            data = await self._metadata_from_wheel(link)
        sha256 = hashlib.sha256(data).hexdigest()
        if expected and sha256 != expected:
            raise UpstreamError(f"{link.filename}: no metadata matching the advertised hash")
        path = await anyio.to_thread.run_sync(self._store.put, data, sha256)
        if not expected:
            self._db.set(("metadata", link.url), sha256)
        return path

    async def _metadata_from_wheel(self, link: FileLink) -> bytes:
        wheel = self.cached(link) or await self.start(link).wait()
        try:
            with open(wheel, "rb") as f:
                return core_metadata(f, link.filename)
        except NoMetadata as exc:
            raise UpstreamError(str(exc)) from None

    async def aclose(self) -> None:
        await self._metadata.aclose()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _verified(link: FileLink, fill: Fill, sha256: str) -> str:
    if fill.size is not None and fill.written != fill.size:
        raise FillFailed(f"upstream sent {fill.written} of {fill.size} bytes")
    if link.sha256 is not None and sha256 != link.sha256:
        raise FillFailed(f"sha256 mismatch: listed {link.sha256}, got {sha256}")
    return sha256
