"""Warming what a client will ask for next: pip resolves one project at a time, so on a far
upstream each of its page and metadata requests costs a round trip. When a client is served a
wheel's core metadata, the pages of its dependencies are fetched in the background (in the
same index, through the same routes and policy), with the core metadata of the files the
client will likely pick and, if small, the files themselves; and so on down the tree, within
a budget per request.

It never delays a client: it runs after the answer, a few projects at a time over all
clients, and what it fetches goes through the same single flights a client's own request
would join. `/metrics` counts what it fetched and what clients then asked for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import anyio
from packaging.requirements import Requirement

from ..core.config import Index, Prefetch
from ..core.dependencies import Client, client_of, likely_files, project_name, requirements
from ..core.model import CacheResult, FileOrigin, NormalizedName
from .filler import CacheFiller
from .metadata import CoreMetadata
from .metrics import Metrics
from .pages import PageCache
from .screening import Screening

log = logging.getLogger("pypi_proxy.prefetch")
Kind = Literal["page", "metadata", "file"]  # what was warmed, as /metrics labels it
K = TypeVar("K")
V = TypeVar("V")

# Files of one project whose metadata is warmed (the wheels of one version for one machine).
FILES_PER_PROJECT = 2
# Warm-ups under way at once; a metadata request beyond that warms nothing.
MAX_WARMUPS = 32
# What was warmed, remembered to count its use and not to warm it again soon.
REMEMBERED = 10_000
WARM_AGAIN_AFTER = 300.0  # seconds


@dataclass
class _Budget:
    projects: int


class Warmer:
    def __init__(
        self,
        settings: Prefetch,
        pages: PageCache,
        metadata: CoreMetadata,
        filler: CacheFiller,
        screening: Screening,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._pages, self._metadata, self._filler = pages, metadata, filler
        self._screening, self._metrics = screening, metrics
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._warmed_at: OrderedDict[tuple[str, NormalizedName], float] = OrderedDict()
        self._fetched: OrderedDict[tuple[Kind, str], None] = OrderedDict()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def after_metadata(self, index: Index, path: Path, user_agent: str | None) -> None:
        """A client was served this core metadata: warm what it requires, in the background."""
        if not self._settings.dependencies or len(self._tasks) >= MAX_WARMUPS:
            return
        task = asyncio.create_task(self._warm(index, path, client_of(user_agent)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def used(self, kind: Kind, key: str) -> None:
        """A client asked for this; counted if a warm-up fetched it."""
        if (kind, key) in self._fetched:
            del self._fetched[kind, key]
            self._metrics.prefetch_used(kind)

    # -- warming -------------------------------------------------------------------------

    async def _warm(self, index: Index, path: Path, client: Client) -> None:
        try:
            metadata = await anyio.to_thread.run_sync(path.read_bytes)
        except OSError as exc:  # evicted meanwhile
            log.info("prefetch: %s", exc)
            return
        budget = _Budget(self._settings.projects)
        async with anyio.create_task_group() as group:
            self._spawn(group, index, requirements(metadata, client), client, budget)

    def _spawn(
        self,
        group: anyio.abc.TaskGroup,
        index: Index,
        wanted: Iterable[Requirement],
        client: Client,
        budget: _Budget,
    ) -> None:
        now = time.monotonic()
        for requirement in wanted:
            key = (index.name, project_name(requirement))
            if budget.projects <= 0:
                return
            if now - self._warmed_at.get(key, -WARM_AGAIN_AFTER) < WARM_AGAIN_AFTER:
                continue
            budget.projects -= 1
            _remember(self._warmed_at, key, now)
            group.start_soon(self._project, group, index, requirement, client, budget)

    async def _project(
        self,
        group: anyio.abc.TaskGroup,
        index: Index,
        requirement: Requirement,
        client: Client,
        budget: _Budget,
    ) -> None:
        async with self._slots:
            try:
                more = await self._warm_project(index, requirement, client)
            except Exception as exc:  # a guess that did not work out: the client will ask
                log.info("prefetch of %s: %s", requirement.name, exc)
                return
        self._spawn(group, index, more, client, budget)

    async def _warm_project(
        self, index: Index, requirement: Requirement, client: Client
    ) -> list[Requirement]:
        """The project's page and its likely files' metadata (and small files); what those
        require in turn."""
        name = project_name(requirement)
        if self._screening.project(index, name, count=False) is not None:
            return []
        found = await self._pages.project(index, name)
        if found is None:
            return []
        if found.cache is CacheResult.MISS:
            self._note("page", f"{index.name}/{name}")
        more: list[Requirement] = []
        for link in likely_files(found.value.files, requirement, client)[:FILES_PER_PROJECT]:
            origin = found.origin(link.filename)
            if origin is None or self._screening.file(index, origin, "", count=False):
                continue
            origin = self._pages.learned(origin)
            more += requirements(await self._warm_metadata(origin), client)
            if link.size is not None and link.size <= self._settings.small_files:
                await self._warm_file(origin)
        return more

    async def _warm_metadata(self, origin: FileOrigin) -> bytes:
        key = origin.link.key
        if self._metadata.stored(origin) is None:
            self._note("metadata", key)
        path = await self._metadata.file(origin)
        return await anyio.to_thread.run_sync(path.read_bytes)

    async def _warm_file(self, origin: FileOrigin) -> None:
        link = origin.link
        if self._filler.cached(link) is not None or not self._filler.has_room(link.size or 0):
            return  # there, or only room for what clients ask for
        self._note("file", origin.link.key)
        await self._filler.start(origin).wait()

    def _note(self, kind: Kind, key: str) -> None:
        self._metrics.prefetched(kind)
        _remember(self._fetched, (kind, key), None)


def _remember(memory: OrderedDict[K, V], key: K, value: V) -> None:
    """Keep the newest `REMEMBERED` keys."""
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > REMEMBERED:
        memory.popitem(last=False)
