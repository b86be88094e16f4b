"""What one replica learned, shared with the others through the bucket: the sha256 of a file
listed without one (found when it was downloaded) and the hash of a wheel's metadata (read
out of the wheel). Each lesson is a small object under `lessons/`, written when it is
learned; every replica reads those it lacks now and then, so that all of them list the same
hashes, and find the file in the bucket by its hash.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import cast, get_args

import obstore.exceptions

from .bucket import Bucket
from .index_db import IndexDB, Lesson

log = logging.getLogger("pypi_proxy.lessons")

EVERY = 30.0  # seconds between looks for the other replicas' lessons
_SHARED: tuple[Lesson, ...] = ("sha256", "metadata")
_FAILURES = (obstore.exceptions.BaseError, OSError)


class LessonSharing:
    def __init__(self, bucket: Bucket, db: IndexDB, every: float = EVERY) -> None:
        self._bucket, self._db, self._every = bucket, db, every
        self._known: set[str] = set()  # lesson keys learned here or read already
        self._teaching: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read_now_and_then())

    async def aclose(self) -> None:
        tasks = [t for t in (self._task, *self._teaching) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task

    def learned(self, lesson: Lesson, url: str, sha256: str) -> None:
        """A lesson learned here (for good): to the bucket, behind the client's back."""
        if lesson not in _SHARED:
            return
        self._known.add(self._bucket.lesson_key(lesson, url))
        task = asyncio.create_task(self._teach(lesson, url, sha256))
        self._teaching.add(task)
        task.add_done_callback(self._teaching.discard)

    async def _teach(self, lesson: Lesson, url: str, sha256: str) -> None:
        try:
            await self._bucket.teach(lesson, url, sha256)
        except _FAILURES as exc:  # read again by nobody: the others learn it themselves
            log.warning("could not share what was learned of %s: %s", url, exc)

    async def read(self) -> int:
        """Learn what the other replicas taught since the last look; how many lessons."""
        count = 0
        for key in await self._bucket.lesson_keys():
            if key in self._known:
                continue
            found = await self._bucket.lesson(key)
            self._known.add(key)
            if found is not None and found[0] in get_args(Lesson):
                lesson, url, sha256 = found
                self._db.learn(cast(Lesson, lesson), url, sha256, share=False)
                count += 1
        return count

    async def _read_now_and_then(self) -> None:
        while True:
            try:
                learned = await self.read()
            except _FAILURES as exc:
                log.warning("could not read the other replicas' lessons: %s", exc)
            else:
                if learned:
                    log.info("learned %d hashes from the other replicas", learned)
            await asyncio.sleep(self._every)
