"""PEP 740 provenance files (`<file>.provenance`), for files whose upstream lists one.

Fetched once from the mirror that listed the file, at the URL it gave, kept in the store
under its sha256 and served from there: the attestations are about the file, which never
changes, so neither does its provenance.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio

from ..core.model import FileOrigin
from .blobs import BlobStore
from .flight import SingleFlight
from .index_db import IndexDB
from .upstream import UpstreamClient

MEDIA_TYPE = "application/vnd.pypi.integrity.v1+json"


class Provenance:
    def __init__(self, store: BlobStore, db: IndexDB, client: UpstreamClient) -> None:
        self._store = store
        self._db = db
        self._client = client
        self._flights: SingleFlight[Path] = SingleFlight()

    async def aclose(self) -> None:
        await self._flights.aclose()

    async def file(self, origin: FileOrigin) -> Path:
        """The stored provenance of a file that lists one (see `FileLink.provenance`)."""
        url = origin.link.provenance
        assert url is not None, "only for files that list a provenance"
        found = self._store.find(self._db.provenance_sha256_of(origin.link))
        if found is not None:
            return found
        return await self._flights.run(url, lambda: self._fetch(origin, url))

    async def _fetch(self, origin: FileOrigin, url: str) -> Path:
        data = await self._client.fetch_listed(origin, url)
        sha256 = hashlib.sha256(data).hexdigest()
        path = await anyio.to_thread.run_sync(self._store.put, data, sha256)
        self._db.learn("provenance", url, sha256)
        return path
