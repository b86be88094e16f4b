"""What the app serves with, made once when it starts and closed when it stops."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

import anyio
import httpx
from starlette.requests import Request

from ..core.config import Config
from .advisory_files import AdvisoryFiles
from .blobs import BlobStore
from .bucket import Bucket
from .conda import CondaChannels
from .filler import CacheFiller
from .index_db import IndexDB
from .lessons import LessonSharing
from .locks import FileLocks
from .metadata import CoreMetadata
from .metrics import Metrics
from .pages import PageCache
from .provenance import Provenance
from .screening import Screening
from .uploads import Uploads
from .upstream import UpstreamClient
from .warming import Warmer

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
    provenance: Provenance
    screening: Screening
    advisories: AdvisoryFiles
    warmer: Warmer
    uploads: Uploads | None = None  # to the object store, when there is one
    conda: CondaChannels | None = None  # when the config serves conda channels
    started: float = field(default_factory=time.monotonic)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@asynccontextmanager
async def open_services(
    config: Config, metrics: Metrics, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Services]:
    """The services, each closed on the way out in the reverse of the order made (a metadata
    fetch may still start a download: metadata is closed before the filler, and warming,
    which asks both, before either)."""
    async with AsyncExitStack() as stack:
        store = BlobStore(config.cache_dir, config.max_size, config.min_free)
        locks = FileLocks(config.cache_dir / "locks")
        stack.callback(locks.close)
        await anyio.to_thread.run_sync(store.usage)  # one scan at start, off the event loop
        removed = store.clean(locks)
        if removed:
            log.info("removed %d partial downloads left by an earlier run", removed)
        bucket = Bucket(config.store, config) if config.store else None
        client = _closed(stack, UpstreamClient(config, metrics, transport=transport, bucket=bucket))
        db = IndexDB(config.cache_dir)
        stack.callback(db.close)
        uploads = None
        if bucket is not None:
            uploads = _closed(stack, Uploads(bucket, store, db, client.mirrors, metrics))
            store.committed = partial(_from_any_thread, asyncio.get_running_loop(), uploads.add)
            uploads.start()
            metrics.watch_uploads(uploads.pending)
            sharing = _closed(stack, LessonSharing(bucket, db))
            db.taught = sharing.learned
            sharing.start()
        pages = _closed(stack, PageCache(config, db, client))
        conda = None
        if config.conda_channels:
            conda = _closed(stack, CondaChannels(config, client, locks))
        filler = _closed(
            stack,
            CacheFiller(
                store, db, client, locks, (config.segments, config.segment_above), config.page_ttl
            ),
        )
        limit = config.limits.metadata_size
        metadata = _closed(stack, CoreMetadata(store, db, client, filler, limit))
        provenance = _closed(stack, Provenance(store, db, client))
        paths = {p.advisories for p in config.policies() if p.advisories}
        advisories = _closed(stack, AdvisoryFiles(paths))
        await advisories.start()
        metrics.watch(lambda: len(filler.fills()), store.usage)
        screening = Screening(db, advisories, metrics)
        warmer = _closed(
            stack, Warmer(config.prefetch, pages, metadata, filler, screening, metrics)
        )
        yield Services(
            config=config,
            metrics=metrics,
            client=client,
            store=store,
            db=db,
            pages=pages,
            filler=filler,
            metadata=metadata,
            provenance=provenance,
            screening=screening,
            advisories=advisories,
            warmer=warmer,
            uploads=uploads,
            conda=conda,
        )


def _from_any_thread(
    loop: asyncio.AbstractEventLoop, call: Callable[[str], None], sha256: str
) -> None:
    """`call(sha256)` on the event loop, whichever thread committed the file (a metadata
    file is stored from a worker thread)."""
    loop.call_soon_threadsafe(call, sha256)


class _Closable(Protocol):
    async def aclose(self) -> None: ...


C = TypeVar("C", bound=_Closable)


def _closed(stack: AsyncExitStack, service: C) -> C:
    stack.push_async_callback(service.aclose)
    return service
