"""What the app serves with, made once when it starts and closed when it stops."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import httpx
from starlette.requests import Request

from ..core.config import Config
from .advisory_files import AdvisoryFiles
from .blobs import BlobStore
from .filler import CacheFiller
from .index_db import IndexDB
from .locks import FileLocks
from .metadata import CoreMetadata
from .metrics import Metrics
from .pages import PageCache
from .screening import Screening
from .upstream import UpstreamClient

log = logging.getLogger("pypi_proxy.app")


@dataclass
class Services:
    config: Config
    metrics: Metrics
    client: UpstreamClient
    store: BlobStore
    db: IndexDB
    pages: PageCache
    filler: CacheFiller
    metadata: CoreMetadata
    screening: Screening
    advisories: AdvisoryFiles
    started: float = field(default_factory=time.monotonic)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@asynccontextmanager
async def open_services(
    config: Config, metrics: Metrics, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Services]:
    store = BlobStore(config.cache_dir, config.max_size, config.min_free)
    locks = FileLocks(config.cache_dir / "locks")
    await anyio.to_thread.run_sync(store.usage)  # one scan at start, off the event loop
    removed = store.clean(locks)
    if removed:
        log.info("removed %d partial downloads left by an earlier run", removed)
    client = UpstreamClient(config, metrics, transport=transport)
    db = IndexDB(config.cache_dir)
    filler = CacheFiller(store, db, client, locks)
    metadata = CoreMetadata(store, db, client, filler)
    pages = PageCache(config, db, client)
    advisories = AdvisoryFiles({p.advisories for p in config.policies() if p.advisories})
    screening = Screening(db, advisories, metrics)
    metrics.watch(lambda: len(filler.fills()), store.usage)
    try:
        await advisories.start()
        yield Services(
            config, metrics, client, store, db, pages, filler, metadata, screening, advisories
        )
    finally:
        await advisories.aclose()
        await metadata.aclose()  # first: a metadata fetch may still start a download
        await filler.aclose()
        await pages.aclose()
        await client.aclose()
        db.close()
        locks.close()
