"""Index pages: fetched from upstreams at most once per TTL, kept on disk across restarts.

Each upstream's page for a project is one entry, on disk (the index database) and in a small
in-memory layer that also keeps the bodies rendered from it, so a page of 4,000 files is
rendered once per change and per format, not once per request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Protocol, TypeVar, cast

import anyio

from ..core.config import Config, Index, Upstream
from ..core.model import CacheResult, FileLink, FileOrigin, NormalizedName, ProjectPage
from ..core.render import Format, Rendered, render_project
from ..core.routing import route_for, union
from .errors import UpstreamError
from .flight import SingleFlight
from .index_db import IndexDB
from .page_entries import Entry, Found, ProjectFound, Shown
from .screening import PageScreen

log = logging.getLogger("pypi_proxy.pages")

T = TypeVar("T")
NEGATIVE_TTL = 60.0


class PageSource(Protocol):
    """Where pages come from (`UpstreamClient`)."""

    async def project_page(
        self, upstream: Upstream, name: NormalizedName
    ) -> ProjectPage | None: ...

    async def project_names(self, upstream: Upstream) -> set[NormalizedName]: ...


@dataclass(frozen=True)
class _Codec(Generic[T]):
    encode: Callable[[T], Any]
    decode: Callable[[Any], T]


_PAGE = _Codec[ProjectPage | None](
    encode=lambda page: page.to_dict() if page else None,
    decode=lambda data: ProjectPage.from_dict(data) if data else None,
)
_NAMES = _Codec[set[NormalizedName]](encode=sorted, decode=set)
# Which copy wins the X-Cache of a page made of several: the least fresh.
_WORST_FIRST = (CacheResult.STALE, CacheResult.MISS, CacheResult.HIT)


class PageCache:
    """Fresh for `page_ttl`; then served at once while one refresh runs in the background,
    for up to `stale_while_revalidate` more; and, when every mirror fails, served for up to
    `stale_if_error` rather than not at all."""

    def __init__(
        self,
        config: Config,
        db: IndexDB,
        source: PageSource,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._memory_limit = config.limits.page_memory
        self._weighed: dict[str, int] = {}  # key -> bytes its entry held when last weighed
        self._held = 0  # their sum: kept as entries come, go and are rendered
        self._db = db
        self._source = source
        self._clock = clock
        self._memory: OrderedDict[str, Entry[Any]] = OrderedDict()
        self._flights: SingleFlight[Entry[Any]] = SingleFlight()

    async def aclose(self) -> None:
        await self._flights.aclose()

    async def project(
        self, index: Index, name: NormalizedName, *, max_age: float | None = None
    ) -> ProjectFound | None:
        """The project's page from the upstreams the index routes it to: the first that has
        it, or (`union`) all that have it, merged.

        An upstream that cannot answer (and has no copy in the cache) raises UpstreamError
        rather than letting a lower-priority upstream answer in its place: that fall-through
        is how dependency confusion happens. `max_age` overrides the TTL: infinite to take any
        copy, 0 to insist on a fresh one.
        """
        route = route_for(index.routes, name)
        if route is None:
            return None
        found: list[tuple[Upstream, Found[ProjectPage]]] = []
        for upstream_name in route.upstreams:
            upstream = self._config.upstream(upstream_name)
            got = await self._upstream_page(upstream, name, max_age)
            if got.value is not None:
                found.append((upstream, cast(Found[ProjectPage], got)))
                if route.strategy == "first":
                    break
        if not found:
            return None
        entry = found[0][1].entry if len(found) == 1 else self._merged(found)
        cache = next(c for c in _WORST_FIRST if c in {f.cache for _, f in found})
        return ProjectFound(entry, cache, tuple((u, f.value) for u, f in found))

    async def _upstream_page(
        self, upstream: Upstream, name: NormalizedName, max_age: float | None
    ) -> Found[ProjectPage | None]:
        if upstream.hosted is not None:
            max_age = 0  # its own folder, listed at once: an upload shows on the next page
        ttl = self._config.page_ttl if max_age is None else max_age
        return await self._get(
            self._db.page_key(upstream, name),
            partial(self._dated_page, upstream, name),
            _PAGE,
            # "No such project" is remembered briefly, so that a project published a minute
            # ago shows up soon, while a typo does not cost a request every time.
            ttl=lambda page: ttl if page else min(ttl, NEGATIVE_TTL),
            revalidate=max_age is None,
        )

    async def _dated_page(self, upstream: Upstream, name: NormalizedName) -> ProjectPage | None:
        """The upstream's page, every file with an upload time (see `IndexDB.dated`)."""
        page = await self._source.project_page(upstream, name)
        if page is None or all(link.upload_time for link in page.files):
            return page
        return await anyio.to_thread.run_sync(self._db.dated, upstream, page, self._clock())

    def _merged(self, found: list[tuple[Upstream, Found[ProjectPage]]]) -> Entry[ProjectPage]:
        """One merged entry per set of upstream entries, so that it is rendered once too."""
        entries = [f.entry for _, f in found]
        parts = ",".join(
            f"{self._db.page_key(u, f.value.name)}@{f.entry.fetched}" for u, f in found
        )
        key = f"merged:{parts}"
        merged = self._memory.get(key)
        if merged is None:
            merged = Entry(union([e.value for e in entries]), min(e.fetched for e in entries))
            self._remember(key, merged)
        return cast(Entry[ProjectPage], merged)

    async def rendered(
        self, found: ProjectFound, fmt: Format, screen: PageScreen | None = None
    ) -> Shown:
        """A project page's body, with what the proxy learned itself: the sha256 of files
        listed without one (nightly pages of the PyTorch index), computed when it downloaded
        them, and of the metadata it read out of wheels; and without what `screen` hides."""

        def render(page: ProjectPage) -> Shown:
            page = self.with_lessons(page)
            if screen is None:
                return Shown(render_project(page, fmt))
            screened = screen.screen(page)
            return Shown(render_project(screened.page, fmt), screened.hidden, screened.audited)

        key = (fmt, screen.key if screen else None)
        version = (self._db.lessons(), screen.version if screen else None)
        shown = await found.entry.rendered(key, render, version)
        self._reweigh(found.entry)
        return shown

    async def rendered_names(
        self,
        found: Found[set[NormalizedName]],
        key: Hashable,
        render: Callable[[set[NormalizedName]], Rendered],
    ) -> Rendered:
        """An index root's body, as `render` makes it (once per `key`)."""
        body = await found.entry.rendered(key, render)
        self._reweigh(found.entry)
        return body

    def with_lessons(self, page: ProjectPage) -> ProjectPage:
        """The page with what the proxy learned of its files (see `learned`)."""
        return dataclasses.replace(page, files=tuple(map(self._learned, page.files)))

    def learned(self, origin: FileOrigin) -> FileOrigin:
        """The file with what the proxy learned of it (here, or from the other replicas):
        its sha256, then checked and used to find it in the object store, like a listed one."""
        return dataclasses.replace(origin, link=self._learned(origin.link))

    def _learned(self, link: FileLink) -> FileLink:
        if link.sha256 is None and not link.mutable:  # what may change is listed as it was
            link = dataclasses.replace(link, sha256=self._db.sha256_of(link))
        if not link.metadata_sha256 and link.offers_metadata:
            metadata = self._db.metadata_sha256_of(link)
            if metadata is not None:
                link = dataclasses.replace(link, metadata_sha256=metadata)
        return link

    async def project_list(self, index: Index) -> Found[set[NormalizedName]]:
        """Every project name the upstreams of the index's routes know."""
        used = {name for route in index.routes for name in route.upstreams}
        upstreams = tuple(u for u in self._config.upstreams if u.name in used)
        return await self._get(
            self._db.root_key(upstreams),
            partial(self._fetch_names, upstreams),
            _NAMES,
            ttl=lambda _: self._config.page_ttl,
            revalidate=True,
        )

    async def _fetch_names(self, upstreams: tuple[Upstream, ...]) -> set[NormalizedName]:
        results = await asyncio.gather(
            *(self._source.project_names(u) for u in upstreams), return_exceptions=True
        )
        names: set[NormalizedName] = set()
        for upstream, result in zip(upstreams, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("index root of %s unavailable: %s", upstream.name, result)
                if not isinstance(result, UpstreamError):
                    raise result
            else:
                names |= result
        if all(isinstance(r, BaseException) for r in results):
            raise UpstreamError("no upstream answered for its index root")
        return names

    async def _get(
        self,
        key: str,
        fetch: Callable[[], Awaitable[T]],
        codec: _Codec[T],
        *,
        ttl: Callable[[T], float],
        revalidate: bool,
    ) -> Found[T]:
        entry = await self._kept(key, codec)
        if entry is not None:
            age, fresh_for = self._clock() - entry.fetched, ttl(entry.value)
            if age < fresh_for:
                return Found(entry, CacheResult.HIT)
            if revalidate and age < fresh_for + self._config.stale_while_revalidate:
                self._flights.start(key, partial(self._fetch_and_store, key, fetch, codec))
                return Found(entry, CacheResult.STALE)
        try:
            fetched = await self._flights.run(
                key, partial(self._fetch_and_store, key, fetch, codec)
            )
        except UpstreamError as exc:
            if entry is None or self._clock() - entry.fetched > (
                ttl(entry.value) + self._config.stale_if_error
            ):
                raise
            log.warning("serving a stale copy of %s: %s", key, exc)
            return Found(entry, CacheResult.STALE)
        return Found(fetched, CacheResult.MISS)

    async def _fetch_and_store(
        self, key: str, fetch: Callable[[], Awaitable[T]], codec: _Codec[T]
    ) -> Entry[T]:
        entry = Entry(await fetch(), self._clock())
        await anyio.to_thread.run_sync(
            self._db.store_entry, key, entry.fetched, codec.encode(entry.value)
        )
        self._remember(key, entry)
        return entry

    async def cached(self, upstream: Upstream, name: NormalizedName) -> ProjectPage | None:
        """The project's page as last fetched from the upstream, if it ever was; nothing is
        asked upstream (the status page shows what is known)."""
        entry = await self._kept(self._db.page_key(upstream, name), _PAGE)
        return entry.value if entry else None

    async def _kept(self, key: str, codec: _Codec[T]) -> Entry[T] | None:
        """The entry in memory, else from disk (then kept in memory too)."""
        entry = self._memory.get(key) or await anyio.to_thread.run_sync(self._stored, key, codec)
        if entry is not None:
            self._remember(key, entry)
        return entry

    def _stored(self, key: str, codec: _Codec[T]) -> Entry[T] | None:
        """An entry from disk (in a worker thread: a large one takes a while to unpickle)."""
        stored = self._db.entry(key)
        return None if stored is None else Entry(codec.decode(stored[1]), stored[0])

    def _remember(self, key: str, entry: Entry[Any]) -> None:
        entry.key = key
        self._memory[key] = entry
        self._memory.move_to_end(key)
        self._reweigh(entry)

    def memory(self) -> int:
        """Bytes the entries kept in memory hold, roughly."""
        return self._held

    def _reweigh(self, entry: Entry[Any]) -> None:
        """Count what the entry holds now (one kept here: another may have replaced it), and
        let the least recently used entries go while over `limits.page_memory` (the newest
        stays: it is being served)."""
        if self._memory.get(entry.key) is not entry:
            return
        weight = entry.weight
        self._held += weight - self._weighed.get(entry.key, 0)
        self._weighed[entry.key] = weight
        while self._held > self._memory_limit and len(self._memory) > 1:
            key, _ = self._memory.popitem(last=False)
            self._held -= self._weighed.pop(key, 0)
