"""PEP 658 metadata files (`<wheel>.metadata`), offered for every wheel.

The upstream's own, verified against its advertised hash, where it has one; else METADATA read
out of the wheel: from disk when the wheel is cached, else from its end with a few Range
requests (wheels keep the central directory, and usually METADATA, last), else from the whole
download when no mirror serves ranges. Either way it is stored under its sha256, which the
proxy's pages then advertise.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import IO

import anyio

from ..core.model import FileOrigin
from ..core.wheel import METADATA_LIMIT, Missing, NoMetadata, SparseFile, core_metadata
from .blobs import BlobStore
from .errors import NotFoundUpstream, UpstreamError
from .filler import CacheFiller
from .flight import SingleFlight
from .index_db import IndexDB
from .source_race import Source
from .upstream import UpstreamClient

log = logging.getLogger("pypi_proxy.fill")

# Reading a wheel's metadata by ranges: at least this many bytes a request, this many rounds.
RANGE_READ = 256 * 1024
RANGE_ROUNDS = 6


class CoreMetadata:
    def __init__(
        self,
        store: BlobStore,
        db: IndexDB,
        client: UpstreamClient,
        filler: CacheFiller,
        limit: int = METADATA_LIMIT,
    ) -> None:
        self._store = store
        self._db = db
        self._client = client
        self._filler = filler
        self._flights: SingleFlight[Path] = SingleFlight()
        self._limit = limit

    async def aclose(self) -> None:
        await self._flights.aclose()

    def stored(self, origin: FileOrigin) -> Path | None:
        """The wheel's metadata file, if it is stored."""
        return self._store.find(self._db.metadata_sha256_of(origin.link))

    async def file(self, origin: FileOrigin) -> Path:
        """The stored metadata file of the wheel; one fetch at a time per wheel."""
        found = self.stored(origin)
        if found is not None:
            return found
        return await self._flights.run(origin.link.url, lambda: self._fetch(origin))

    async def _fetch(self, origin: FileOrigin) -> Path:
        link = origin.link
        expected = link.metadata_sha256 or None
        data = None
        if link.metadata_sha256 is not None:  # the upstream offers its own
            data = await self._from_upstream(origin, expected)
        if data is None:
            data = await self._from_wheel(origin)
        sha256 = hashlib.sha256(data).hexdigest()
        if expected and sha256 != expected:
            raise UpstreamError(f"{link.filename}: no metadata matching the advertised hash")
        path = await anyio.to_thread.run_sync(self._store.put, data, sha256)
        if not expected:  # learned: pages offer it with its hash from now on
            self._db.learn("metadata", link.url, sha256)
        return path

    async def _from_upstream(self, origin: FileOrigin, expected: str | None) -> bytes | None:
        """The upstream's own metadata file, from the first source that answers with one
        that matches its hash (raced, see `source_race`)."""

        async def ask(source: Source) -> bytes:
            url = source[1] + ".metadata"
            data = await self._client.fetch_small(source[0], url)
            if expected is not None and hashlib.sha256(data).hexdigest() != expected:
                raise UpstreamError(f"{url}: does not match its hash")
            return data

        async with self._client.lookups(origin) as sources:
            try:
                return await self._client.race(sources, ask).first(UpstreamError("no source"))
            except (NotFoundUpstream, UpstreamError) as exc:
                log.warning("%s.metadata: %s", origin.link.filename, exc)
                return None

    async def _from_wheel(self, origin: FileOrigin) -> bytes:
        try:
            wheel = self._filler.cached(origin.link)
            if wheel is None:
                data = await self._by_ranges(origin)
                if data is not None:
                    return data
                wheel = await self._filler.start(origin).wait()
            return await anyio.to_thread.run_sync(self._read, wheel, origin.link.filename)
        except NoMetadata as exc:
            raise UpstreamError(str(exc)) from None

    def _read(self, wheel: IO[bytes] | SparseFile | Path, filename: str) -> bytes:
        """METADATA out of a wheel (in a worker thread: inflating it takes a while)."""
        if isinstance(wheel, Path):
            with open(wheel, "rb") as f:
                return core_metadata(f, filename, self._limit)
        return core_metadata(wheel, filename, self._limit)

    async def _by_ranges(self, origin: FileOrigin) -> bytes | None:
        first = await self._client.read_range(origin, f"bytes=-{RANGE_READ}")
        if first is None:
            return None
        start, data, size = first
        wheel = SparseFile(size)
        wheel.add(start, data)
        fetched = len(data)
        for _ in range(RANGE_ROUNDS):
            try:
                metadata = await anyio.to_thread.run_sync(self._read, wheel, origin.link.filename)
                log.info("%s: metadata read with %d bytes of ranges", origin.link.filename, fetched)
                return metadata
            except Missing as need:
                end = min(max(need.end, need.start + RANGE_READ), size)
                got = await self._client.read_range(origin, f"bytes={need.start}-{end - 1}")
                if got is None:
                    return None
                wheel.add(got[0], got[1])
                fetched += len(got[1])
        return None
