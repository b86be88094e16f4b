"""One download of a file into the cache, which any number of clients read while it grows.

The download writes a `.part` file; a reader reads it by offset as far as `readable()` allows.
The last byte is held back from readers until the size and sha256 are verified and the file
committed, so a broken or corrupt download is never seen as complete: the readers' bodies
are cut short instead (see `CacheFiller`, which runs fills).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from .errors import UpstreamError
from .memory import CHUNKS

CHUNK = 1024 * 1024
# Files up to this size reach clients only once verified; larger ones stream as they arrive.
VERIFIED_FIRST = 1024 * 1024


class FillFailed(UpstreamError):
    """The download broke or did not verify; nothing was cached."""


class Fill:
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
        self.ahead = 0  # ranges streaming straight from upstream, ahead of the download
        self.started = asyncio.Event()  # set once upstream answered (or the fill failed)
        self._verified = False
        self._changed = asyncio.Event()

    # -- what the download does ----------------------------------------------------------

    def begin(self, size: int | None) -> None:
        """Upstream answered: the size is known as far as it ever will be before the end."""
        self.size = size
        self.started.set()

    def advance(self, written: int) -> None:
        """The part file holds this many bytes now."""
        self.written = written
        self._notify()

    def verified(self) -> None:
        """Every byte is in and matches the sha256: readers may have the last one, while the
        file is made durable and committed."""
        self._verified = True
        self._notify()

    def commit(self, path: Path) -> None:
        """The file is verified and in the store."""
        self.path = path
        self.size = self.written = path.stat().st_size
        self.started.set()
        self._notify()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.started.set()
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- what its readers see ------------------------------------------------------------

    def readable(self) -> int:
        """How far clients may read now: everything written, except the last byte of the
        file until it is verified (with the size unknown, any byte may be the last). A small
        file is held back whole until then: it takes no time to arrive, and a client that
        unpacks while it downloads (uv) then never sees a byte that turns out to be bad."""
        if self._verified:
            return self.written
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
                limit = self.readable() if end is None else min(self.readable(), end)
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
