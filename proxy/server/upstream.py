"""Asking upstream indexes for pages and files, failing over between the mirrors of a group.

Mirrors are tried in order, skipping those whose circuit is open (see `mirrors`). What goes
wrong reaches the rest of the proxy as `UpstreamError` (transient: try later, answer 503) or
`NotFoundUpstream`, never as a library error (see `http_client`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import anyio
import httpx

from ..core.config import Config, Upstream
from ..core.health import MirrorHealth, MirrorReport
from ..core.model import FileLink, FileOrigin, NormalizedName, ProjectPage
from ..core.parse import ParseError, parse_flat_listing, parse_project_list, parse_project_page
from ..core.ranges import content_range
from .bucket import Bucket
from .errors import NotFoundUpstream, UpstreamError
from .flat_listings import FlatListings, Listing
from .hedging import Hedged
from .http_client import NOT_FOUND, PAGE_ACCEPT
from .metrics import Metrics
from .mirror_requests import MirrorRequests, UpstreamBody
from .mirrors import MirrorFailed, Mirrors
from .source_race import Lookups, Source, SourceRace

T = TypeVar("T")

# Bodies above this are parsed in a worker thread so the event loop keeps serving.
_PARSE_INLINE_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Passed:
    """A body straight from upstream, and what ends its response there: to be called when
    the answer ends, however it ends (see `responses.streaming`)."""

    chunks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Opened:
    """A file response whose headers are in, and where it came from. Ended as a context
    manager, so that a body that broke off counts against its mirror (see
    `MirrorRequests.request`), or with `close` when it is done with."""

    source: Source
    body: UpstreamBody
    _exit: Callable[..., Awaitable[bool | None]]

    async def __aenter__(self) -> Opened:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._exit(*exc_info)

    async def close(self) -> None:
        await self._exit(None, None, None)


@dataclass(frozen=True)
class PageSpec(Generic[T]):
    """A kind of page asked of a mirror: its name in messages, the Accept header it is asked
    with, how its body is parsed, and what a "no such page" answer (its status) means; with
    no `absent`, every mirror must have one, and one that does not has failed."""

    what: str
    accept: str
    parse: Callable[[bytes, str], T]
    absent: Callable[[int], T] | None = None


class UpstreamClient:
    def __init__(
        self,
        config: Config,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
        bucket: Bucket | None = None,
    ) -> None:
        """`bucket`: the object store, asked for a file before its mirrors."""
        metrics = metrics or Metrics()
        self.bucket = bucket
        self.mirrors = Mirrors(config, metrics, clock)
        self._flat = frozenset().union(*(u.flat for u in config.upstreams))
        self._listings = FlatListings(config.page_ttl, clock, self._fetch_listing)
        self._metrics = metrics
        self.requests = MirrorRequests(config, self.mirrors, metrics, transport)
        self._limits = config.limits
        links = config.limits.page_links
        self._flat_listing = PageSpec(
            "listing", "text/html", partial(parse_flat_listing, max_links=links)
        )
        # One mirror's file, once a source is chosen (see `file_sources`).
        self.open_file = self.requests.open_file
        self.fetch_small = self.requests.fetch_small

    async def aclose(self) -> None:
        await self._listings.aclose()
        await self.requests.aclose()

    def next_probe(self, upstream: Upstream) -> float | None:
        return self.mirrors.next_probe(upstream)

    def reports(self) -> dict[str, list[MirrorReport]]:
        return self.mirrors.reports()

    # -- index pages ---------------------------------------------------------------------

    async def project_page(self, upstream: Upstream, name: NormalizedName) -> ProjectPage | None:
        """The project's page from the first mirror that has it; None only when every mirror
        answered that it has no such project (a lagging mirror's 404 is not the last word,
        and a mirror that could not be asked leaves the question open)."""
        return await self.failover(upstream, name, partial(self._mirror_page, name=name))

    async def project_names(self, upstream: Upstream) -> set[NormalizedName]:
        names = await self.failover(upstream, "index root", self._mirror_names)
        return names or set()

    async def failover(
        self, upstream: Upstream, what: str, ask: Callable[[MirrorHealth], Awaitable[T | None]]
    ) -> T | None:
        """The first answer of the group's mirrors, asked in turn, the next one as well when
        one is slow to answer (see `hedging`). None when every mirror answered that there is
        no such thing; UpstreamError, naming each mirror's problem, when some could not be
        asked."""
        hedged = Hedged(self.mirrors.preferred(upstream), ask, self.mirrors, self._metrics)
        found = await hedged.answer(what)
        if found is None and hedged.problems:
            message = f"{upstream.name}: {what}: " + "; ".join(hedged.problems)
            raise UpstreamError(message, self.mirrors.next_probe(upstream))
        return found

    async def _mirror_page(self, mirror: MirrorHealth, name: NormalizedName) -> ProjectPage | None:
        if mirror.url in self._flat:
            page = (await self._listings.get(mirror)).get(name)
        else:
            parse = partial(parse_project_page, name, max_links=self._limits.page_links)
            spec = PageSpec("page", PAGE_ACCEPT, parse, _no_page)
            page = await self._page(mirror, f"{mirror.url}{name}/", spec)
        return dataclasses.replace(page, source=mirror.url) if page else None

    async def _mirror_names(self, mirror: MirrorHealth) -> set[NormalizedName]:
        if mirror.url in self._flat:
            return set(await self._listings.get(mirror))
        return await self._page(mirror, mirror.url, _INDEX_ROOT)

    async def _fetch_listing(self, mirror: MirrorHealth) -> Listing:
        return await self._page(mirror, mirror.url, self._flat_listing)

    async def _page(self, mirror: MirrorHealth, url: str, spec: PageSpec[T]) -> T:
        """A page of the mirror, parsed against the URL it finally came from."""
        async with self.requests.request(mirror, url, {"Accept": spec.accept}) as response:
            status = response.status_code
            if status in NOT_FOUND:
                if spec.absent is None:
                    raise self.mirrors.failed(mirror, f"HTTP {status} for the {spec.what}")
                return spec.absent(status)
            body = await self.requests.body(mirror, response, self._limits.page_size)
            try:
                return await _parse(spec.parse, body, str(response.url))
            except Exception as exc:  # any way a hostile body breaks the parser
                reason = exc if isinstance(exc, ParseError) else f"{type(exc).__name__}: {exc}"
                raise self.mirrors.failed(mirror, f"unparseable {spec.what}: {reason}") from None

    # -- files ---------------------------------------------------------------------------

    async def file_sources(self, origin: FileOrigin) -> AsyncGenerator[Source, None]:
        """Where a file can be fetched: from the object store if there is one (when the page
        gives the file's hash: its name there), then from the mirror that listed it, then
        from the others, each looked up on that mirror's own page (mirrors lay their files
        out differently). A mirror that lists other bytes under the same name is passed over."""
        mirrors, link = self.mirrors.preferred(origin.upstream), origin.link
        store = self.mirrors.bucket
        if self.bucket and store and link.sha256 and self.mirrors.usable(store):
            yield store, self.bucket.signed_url(link.sha256)
        listing = next((m for m in mirrors if m.url == origin.page.source), None)
        if listing is not None and self.mirrors.usable(listing):
            yield listing, link.url
        elsewhere = dict(origin.elsewhere) if origin.elsewhere is not None else None
        for mirror in mirrors:
            if mirror is listing or not self.mirrors.usable(mirror):
                continue
            if elsewhere is not None:
                if mirror.url in elsewhere:
                    yield mirror, elsewhere[mirror.url]
                continue
            try:
                other = await self._mirror_page(mirror, origin.page.name)
            except MirrorFailed:
                continue
            found = other.file(link.filename) if other else None
            if found is not None and (
                None in (found.sha256, link.sha256) or found.sha256 == link.sha256
            ):
                yield mirror, found.url

    async def passthrough(
        self, origin: FileOrigin, start: int = 0, end: int | None = None
    ) -> Passed | None:
        """Bytes `start` to `end` (None: the whole file) straight from the first mirror that
        serves them as asked; None if none does. Nothing is verified or kept: this is for
        ranges a client probes ahead of the download, and for a full disk."""
        whole = start == 0 and end is None
        async with aclosing(self.file_sources(origin)) as sources:
            async for mirror, url in sources:
                stack = AsyncExitStack()
                try:
                    body = await stack.enter_async_context(
                        self.open_file(mirror, url, offset=start, end=end)
                    )
                except (UpstreamError, NotFoundUpstream):
                    await stack.aclose()
                    continue
                if (body.partial and body.start == start) or (whole and not body.partial):
                    return Passed(body.chunks, stack.aclose)
                await stack.aclose()  # the whole file instead: not what was asked
        return None

    async def read_range(self, origin: FileOrigin, spec: str) -> tuple[int, bytes, int] | None:
        """One small range of a file (`spec` as in a Range header: `bytes=a-b` or `bytes=-n`)
        from the first source that honours it (raced, see `source_race`): where it starts,
        its bytes, and the file's size. None if no source answers with that range."""
        headers = {"Range": spec, "Accept-Encoding": "identity"}

        async def ask(source: Source) -> tuple[int, bytes, int]:
            mirror, url = source
            try:
                async with self.requests.request(mirror, url, headers) as response:
                    start, total = content_range(response.headers.get("content-range", ""))
                    if response.status_code != 206 or start is None or total is None:
                        raise UpstreamError(f"{url}: no range")  # not read, just closed
                    body = await self.requests.body(mirror, response, self._limits.metadata_size)
                    return start, body, total
            except MirrorFailed as exc:
                raise UpstreamError(f"{url}: {exc}") from None

        async with self.lookups(origin) as sources:
            try:
                return await self.race(sources, ask).first(UpstreamError("no source"))
            except (UpstreamError, NotFoundUpstream):
                return None

    def lookups(self, origin: FileOrigin) -> Lookups:
        """The file's sources (see `file_sources`), for `race` and downloads."""
        return Lookups(self.file_sources(origin))

    def race(
        self,
        sources: Lookups,
        ask: Callable[[Source], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]] | None = None,
    ) -> SourceRace[T]:
        """One question to the file's sources, the next asked as well when one is slow."""
        return SourceRace(sources, ask, self.mirrors, self._metrics, discard)

    async def open_source(
        self, source: Source, offset: int = 0, if_range: str | None = None
    ) -> Opened:
        """A download of the file from `source`, from byte `offset`, once its headers are in."""
        mirror, url = source
        stack = AsyncExitStack()
        try:
            body = await stack.enter_async_context(
                self.open_file(mirror, url, offset=offset, if_range=if_range)
            )
        except BaseException:
            await stack.aclose()
            raise
        return Opened(source, body, stack.__aexit__)

    async def fetch_listed(self, origin: FileOrigin, url: str) -> bytes:
        """A small body the page of `origin` links to besides the file (its provenance),
        from the mirror that listed it."""
        mirrors = self.mirrors.of(origin.upstream)
        mirror = next((m for m in mirrors if m.url == origin.page.source), mirrors[0])
        return await self.fetch_small(mirror, url)

    def delivered(self, sources: list[Source]) -> None:
        """A download came whole from these sources (counted when that is the object store)."""
        if sources and all(mirror is self.mirrors.bucket for mirror, _ in sources):
            self._metrics.store_hit()

    def hedged(self, mirror: MirrorHealth) -> None:
        """A file's source on this mirror was slow to answer: the next one is asked too."""
        self._metrics.hedged(mirror.url)

    async def sent_corrupt(self, mirror: MirrorHealth, link: FileLink) -> None:
        """Bytes that do not match the file's hash, found after the download. The bucket's
        object is deleted (the next download goes upstream, and uploads it anew); a mirror
        is passed over for a while, unless the file may change (then the page listing it
        may be what is out of date)."""
        assert link.sha256 is not None
        if mirror is self.mirrors.bucket and self.bucket is not None:
            await self.bucket.discard(link.sha256, link.filename)
        elif not link.mutable:
            self.mirrors.failed(mirror, f"{link.filename}: bytes do not match sha256", severe=True)


def _no_page(status: int) -> None:
    return None  # the mirror has no such project


_INDEX_ROOT = PageSpec("index root", PAGE_ACCEPT, lambda body, _: parse_project_list(body))


async def _parse(parse: Callable[[bytes, str], T], body: bytes, url: str) -> T:
    """Parse small bodies inline; large ones (numpy's page, an index root of 700,000 names)
    in a worker thread, so the event loop keeps serving meanwhile."""
    if len(body) <= _PARSE_INLINE_LIMIT:
        return parse(body, url)
    return await anyio.to_thread.run_sync(parse, body, url)
