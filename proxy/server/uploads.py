"""Copying what the local cache commits to the bucket, behind the clients' backs: a client
never waits for an upload. What is not uploaded yet is noted in the index database, so an
upload cut short by a restart is done after it; one that fails is tried again, every 15 s at
the most, so a bucket that comes back is caught up with within about that.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import obstore.exceptions

from ..core.health import MirrorHealth
from .blobs import BlobStore
from .bucket import Bucket
from .index_db import IndexDB
from .metrics import Metrics
from .mirrors import Mirrors

log = logging.getLogger("pypi_proxy.uploads")

AT_ONCE = 4  # uploads under way at once: a big file does not hold up the small ones
FIRST_RETRY, LAST_RETRY = 1.0, 15.0  # seconds before a failed upload is tried again


class Uploads:
    def __init__(
        self, bucket: Bucket, blobs: BlobStore, db: IndexDB, mirrors: Mirrors, metrics: Metrics
    ) -> None:
        self._bucket, self._blobs, self._db = bucket, blobs, db
        self._mirrors, self._metrics = mirrors, metrics
        assert mirrors.bucket is not None  # made with the bucket's config
        self._health: MirrorHealth = mirrors.bucket
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._pending: set[str] = set()
        self._retry = FIRST_RETRY
        self._workers: list[asyncio.Task[None]] = []

    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        """Upload what an earlier run left, and from now on what is committed."""
        for sha256 in self._db.to_upload():
            self.add(sha256)
        self._workers = [asyncio.create_task(self._work()) for _ in range(AT_ONCE)]

    async def aclose(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with suppress(asyncio.CancelledError):
                await worker

    def add(self, sha256: str) -> None:
        """A file committed to the local cache: to the bucket too, soon."""
        if sha256 in self._pending:
            return
        self._db.upload_later(sha256)
        self._pending.add(sha256)
        self._queue.put_nowait(sha256)

    async def _work(self) -> None:
        while True:
            sha256 = await self._queue.get()
            if await self._copy(sha256):
                self._pending.discard(sha256)
                self._db.uploaded(sha256)
            else:
                asyncio.get_running_loop().call_later(self._retry, self._queue.put_nowait, sha256)
                self._retry = min(self._retry * 2, LAST_RETRY)

    async def _copy(self, sha256: str) -> bool:
        """Whether the file is in the bucket now (or gone from the local cache before it
        could be copied: nothing is left to upload then)."""
        path = self._blobs.find(sha256)
        if path is None:
            return True
        started = self._mirrors.clock()
        try:
            if not await self._bucket.has(sha256):
                await self._bucket.upload(path, sha256)
                log.info("uploaded %s to %s", sha256, self._bucket.spec.url)
        except FileNotFoundError:  # evicted locally while uploading
            return True
        except (obstore.exceptions.BaseError, OSError) as exc:
            self._metrics.store_upload_failed()
            self._mirrors.failed(self._health, f"upload of {sha256}: {_first_line(exc)}")
            return False
        self._mirrors.succeeded(self._health, self._mirrors.clock() - started)
        self._retry = FIRST_RETRY
        return True


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
