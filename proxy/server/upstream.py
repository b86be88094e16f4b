"""Talking to upstream indexes: the only module that uses httpx.

Every httpx exception is mapped here to `UpstreamError` (transient: try later, answer 503) or
`NotFoundUpstream`, so the rest of the proxy never sees a library error. The mirrors of an
upstream are tried in order, skipping those whose circuit is open (see `health`).

Timeouts are about progress, not total time: one to connect, one for the response headers
(time to first byte), and one for a body that stops moving (stall). A 2.5 GB download that
keeps moving is never cut.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import anyio
import httpx

from ..core.config import Config, Upstream
from ..core.health import MirrorHealth, State
from ..core.model import FileLink, NormalizedName, ProjectPage, hide_passwords
from ..core.parse import ParseError, parse_flat_listing, parse_project_list, parse_project_page
from .flight import SingleFlight
from .metrics import Metrics

log = logging.getLogger("pypi_proxy.upstream")
T = TypeVar("T")

# Preferring JSON: it carries size and upload-time, which HTML cannot.
PAGE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
# Answers that mean "no such project". The PyTorch index says 403 for names it lacks.
NOT_FOUND = frozenset({403, 404, 410})
# Bodies above this are parsed in a worker thread so the event loop keeps serving.
_PARSE_INLINE_LIMIT = 256 * 1024


def proxy_version() -> str:
    try:
        return version("pypi-proxy")
    except PackageNotFoundError:
        return "dev"


def user_agent() -> str:
    return f"pypi-proxy/{proxy_version()}"


class UpstreamError(Exception):
    """An upstream could not answer now (refused, timed out, 5xx, garbage). Transient.

    `retry_after`: seconds until a mirror will be tried again, when that is known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFoundUpstream(Exception):
    """Every mirror asked answered that this does not exist."""


class _MirrorFailed(Exception):
    """One mirror failed this request (already recorded in its health)."""


@dataclass(frozen=True)
class Download:
    """An upstream file response whose body has not been read yet.

    `start` is where the body begins in the file: the offset asked for when the mirror honoured
    the Range, 0 when it sent the whole file instead. `total` is the file's full size, if known.
    """

    start: int
    total: int | None
    validator: str | None
    chunks: AsyncIterator[bytes]
    partial: bool = False  # a 206: the mirror honoured the Range


class UpstreamClient:
    def __init__(
        self,
        config: Config,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._metrics = metrics or Metrics()
        self._clock = clock
        self.health = {
            u.name: [MirrorHealth(url, config.circuit) for url in u.mirrors]
            for u in config.upstreams
        }
        self._flat = frozenset().union(*(u.flat for u in config.upstreams))
        self._listings: dict[str, tuple[float, dict[NormalizedName, ProjectPage]]] = {}
        self._listing_flights: SingleFlight[dict[NormalizedName, ProjectPage]] = SingleFlight()
        context = ssl.create_default_context(
            cafile=str(config.ca_bundle) if config.ca_bundle else None
        )
        self._http = httpx.AsyncClient(
            # httpx's read timeout is per read: it is the stall timeout. Time to first byte
            # is bounded separately, around sending the request.
            timeout=httpx.Timeout(
                connect=config.connect_timeout,
                read=config.stall_timeout,
                write=config.stall_timeout,
                pool=config.connect_timeout,
            ),
            follow_redirects=True,
            headers={"User-Agent": user_agent()},
            verify=context,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=40),
        )

    async def aclose(self) -> None:
        await self._listing_flights.aclose()
        await self._http.aclose()

    # -- index pages ---------------------------------------------------------------------

    async def project_page(self, upstream: Upstream, name: NormalizedName) -> ProjectPage | None:
        """The project's page from the first mirror that has it; None only when every mirror
        answered that it has no such project (a lagging mirror's 404 is not the last word,
        and a mirror that could not be asked leaves the question open)."""
        problems = []
        for mirror in self.health[upstream.name]:
            if not mirror.available(self._clock()):
                problems.append(f"{mirror.url}: skipped (circuit open)")
                continue
            try:
                page = await self._mirror_page(mirror, name)
            except _MirrorFailed as exc:
                problems.append(f"{mirror.url}: {exc}")
                continue
            if page is not None:
                return page
        if problems:
            message = f"{upstream.name}: {name}: " + "; ".join(problems)
            raise UpstreamError(message, self.next_probe(upstream))
        return None

    async def _mirror_page(self, mirror: MirrorHealth, name: NormalizedName) -> ProjectPage | None:
        if mirror.url in self._flat:
            page = (await self._listing(mirror)).get(name)
            return dataclasses.replace(page, source=mirror.url) if page else None
        async with self._request(mirror, mirror.url + f"{name}/", {"Accept": PAGE_ACCEPT}) as r:
            if r.status_code in NOT_FOUND:
                return None
            body = await self._body(mirror, r)
            try:
                page = await _parse(parse_project_page, name, body, str(r.url))
            except ParseError as exc:
                raise self._failed(mirror, f"unparseable page: {exc}") from None
        return dataclasses.replace(page, source=mirror.url)

    async def _listing(self, mirror: MirrorHealth) -> dict[NormalizedName, ProjectPage]:
        """A flat mirror's one page, parsed, kept for the page TTL: every project asks it."""
        kept = self._listings.get(mirror.url)
        if kept is not None and self._clock() - kept[0] < self._config.page_ttl:
            return kept[1]
        return await self._listing_flights.run(mirror.url, partial(self._fetch_listing, mirror))

    async def _fetch_listing(self, mirror: MirrorHealth) -> dict[NormalizedName, ProjectPage]:
        async with self._request(mirror, mirror.url, {"Accept": "text/html"}) as response:
            if response.status_code in NOT_FOUND:
                raise self._failed(mirror, f"HTTP {response.status_code} for its listing")
            body = await self._body(mirror, response)
            try:
                listing = await _parse(parse_flat_listing, body, str(response.url))
            except ParseError as exc:
                raise self._failed(mirror, f"unparseable listing: {exc}") from None
        self._listings[mirror.url] = (self._clock(), listing)
        return listing

    async def project_names(self, upstream: Upstream) -> set[NormalizedName]:
        failures = []
        for mirror in self.health[upstream.name]:
            if not mirror.available(self._clock()):
                failures.append(f"{mirror.url}: skipped (circuit open)")
                continue
            if mirror.url in self._flat:
                try:
                    return set(await self._listing(mirror))
                except _MirrorFailed as exc:
                    failures.append(f"{mirror.url}: {exc}")
                    continue
            try:
                async with self._request(mirror, mirror.url, {"Accept": PAGE_ACCEPT}) as r:
                    if r.status_code in NOT_FOUND:
                        raise self._failed(mirror, f"HTTP {r.status_code} for the index root")
                    body = await self._body(mirror, r)
                    try:
                        return await _parse(parse_project_list, body)
                    except ParseError as exc:
                        raise self._failed(mirror, f"unparseable index root: {exc}") from None
            except _MirrorFailed as exc:
                failures.append(f"{mirror.url}: {exc}")
        message = f"{upstream.name}: index root: " + "; ".join(failures)
        raise UpstreamError(message, self.next_probe(upstream))

    # -- files ---------------------------------------------------------------------------

    async def file_sources(
        self, upstream: Upstream, page: ProjectPage, link: FileLink
    ) -> AsyncGenerator[tuple[MirrorHealth, str], None]:
        """Where a file can be fetched: first from the mirror that listed it, then from the
        others, each looked up on that mirror's own page (mirrors lay their files out
        differently). A mirror that lists other bytes under the same name is passed over."""
        mirrors = self.health[upstream.name]
        listing = next((m for m in mirrors if m.url == page.source), None)
        if listing is not None and listing.available(self._clock()):
            yield listing, link.url
        for mirror in mirrors:
            if mirror is listing or not mirror.available(self._clock()):
                continue
            try:
                other = await self._mirror_page(mirror, page.name)
            except _MirrorFailed:
                continue
            found = other.file(link.filename) if other else None
            if found is not None and (
                None in (found.sha256, link.sha256) or found.sha256 == link.sha256
            ):
                yield mirror, found.url

    async def fetch_small(self, mirror: MirrorHealth, url: str) -> bytes:
        """A whole small body (a `.metadata` file)."""
        try:
            async with self._request(mirror, url, {}) as response:
                if response.status_code in NOT_FOUND:
                    raise NotFoundUpstream(url)
                return await self._body(mirror, response)
        except _MirrorFailed as exc:
            raise UpstreamError(f"{url}: {exc}") from None

    @asynccontextmanager
    async def download(
        self,
        mirror: MirrorHealth,
        url: str,
        *,
        offset: int = 0,
        end: int | None = None,
        if_range: str | None = None,
    ) -> AsyncIterator[Download]:
        """Open a file download of bytes `offset` to `end` (exclusive; None: to the end of the
        file). The body streams from `Download.chunks`."""
        headers = {"Accept-Encoding": "identity"}
        if offset or end is not None:
            headers["Range"] = f"bytes={offset}-{'' if end is None else end - 1}"
            if if_range:
                headers["If-Range"] = if_range
        try:
            async with self._request(mirror, url, headers) as response:
                if response.status_code in NOT_FOUND:
                    raise NotFoundUpstream(url)
                yield _download(response, offset, self._mapped(mirror, response))
        except _MirrorFailed as exc:
            raise UpstreamError(f"{url}: {exc}") from None

    async def passthrough(
        self,
        upstream: Upstream,
        page: ProjectPage,
        link: FileLink,
        start: int = 0,
        end: int | None = None,
    ) -> AsyncIterator[bytes] | None:
        """Bytes `start` to `end` (None: the whole file) straight from the first mirror that
        serves them as asked; None if none does. Nothing is verified or kept: this is for
        ranges a client probes ahead of the download, and for a full disk. The stream closes
        the upstream response when it ends."""
        whole = start == 0 and end is None
        async with aclosing(self.file_sources(upstream, page, link)) as sources:
            async for mirror, url in sources:
                stack = AsyncExitStack()
                try:
                    download = await stack.enter_async_context(
                        self.download(mirror, url, offset=start, end=end)
                    )
                except (UpstreamError, NotFoundUpstream):
                    await stack.aclose()
                    continue
                if (download.partial and download.start == start) or (
                    whole and not download.partial
                ):
                    return _closing(stack, download.chunks)
                await stack.aclose()  # the whole file instead: not what was asked
        return None

    async def read_range(
        self, upstream: Upstream, page: ProjectPage, link: FileLink, spec: str
    ) -> tuple[int, bytes, int] | None:
        """One small range of a file (`spec` as in a Range header: `bytes=a-b` or `bytes=-n`)
        from the first mirror that honours it: where it starts, its bytes, and the file's
        size. None if no mirror answers with that range."""
        headers = {"Range": spec, "Accept-Encoding": "identity"}
        async with aclosing(self.file_sources(upstream, page, link)) as sources:
            async for mirror, url in sources:
                try:
                    async with self._request(mirror, url, headers) as response:
                        start, total = _content_range(response.headers.get("content-range", ""))
                        if response.status_code != 206 or start is None or total is None:
                            continue  # the whole file instead: not read, just closed
                        return start, await self._body(mirror, response), total
                except _MirrorFailed:
                    continue
        return None

    async def _mapped(self, mirror: MirrorHealth, response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                self._metrics.fetched_bytes.inc(len(chunk))
                yield chunk
        except httpx.HTTPError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            raise UpstreamError(str(self._failed(mirror, _describe(exc), severe=timeout))) from None

    # -- mirrors -------------------------------------------------------------------------

    @asynccontextmanager
    async def _request(
        self, mirror: MirrorHealth, url: str, headers: dict[str, str]
    ) -> AsyncIterator[httpx.Response]:
        """A response whose status is 200, 206 or not-found; anything else fails the mirror."""
        started = self._clock()
        request = self._http.build_request("GET", url, headers=headers)
        try:
            with anyio.fail_after(self._config.first_byte_timeout):
                response = await self._http.send(request, stream=True)
        except TimeoutError:
            raise self._failed(
                mirror, "no response within the first-byte timeout", severe=True
            ) from None
        except httpx.HTTPError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            raise self._failed(mirror, _describe(exc), severe=timeout) from None
        try:
            status = response.status_code
            if status not in (200, 206) and status not in NOT_FOUND:
                retry_after = _retry_after(response.headers.get("retry-after"))
                raise self._failed(mirror, f"HTTP {status}", retry_after=retry_after)
            encoded = response.headers.get("content-encoding", "identity") != "identity"
            if encoded and headers.get("Accept-Encoding") == "identity":
                # File bytes are read raw, by offset: an encoded body would not hash right.
                # Pages and `.metadata` files may come compressed; httpx decodes them.
                raise self._failed(mirror, "unexpected Content-Encoding")
            latency = self._clock() - started
            yield response
            # Only a body read to its end is a success: a mirror that answers and then keeps
            # breaking off must still end up skipped.
            self._succeeded(mirror, latency)
        finally:
            await response.aclose()

    async def _body(self, mirror: MirrorHealth, response: httpx.Response) -> bytes:
        try:
            return await response.aread()
        except httpx.HTTPError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            raise self._failed(mirror, _describe(exc), severe=timeout) from None

    def _succeeded(self, mirror: MirrorHealth, latency: float) -> None:
        if mirror.state is State.OPEN:
            log.info("mirror %s answers again: circuit closed", mirror.url)
        mirror.succeeded(latency)
        self._metrics.upstream_latency.labels(hide_passwords(mirror.url)).observe(latency)

    def mark_corrupt(self, mirror: MirrorHealth, reason: str) -> None:
        """Bytes that do not match their hash, found after the download."""
        self._failed(mirror, reason, severe=True)

    def _failed(
        self,
        mirror: MirrorHealth,
        reason: str,
        *,
        severe: bool = False,
        retry_after: float | None = None,
    ) -> _MirrorFailed:
        log.warning("mirror %s: %s", mirror.url, reason)
        self._metrics.upstream_errors.labels(hide_passwords(mirror.url)).inc()
        if mirror.failed(reason, self._clock(), severe=severe, retry_after=retry_after):
            log.warning(
                "mirror %s: circuit open after %d failure(s); next probe in %.1f s",
                mirror.url,
                mirror.failures,
                mirror.next_probe - self._clock(),
            )
        return _MirrorFailed(reason)

    def next_probe(self, upstream: Upstream) -> float | None:
        """Seconds until the first of the upstream's skipped mirrors may be tried again."""
        now = self._clock()
        waits = [m.next_probe - now for m in self.health[upstream.name] if m.state is State.OPEN]
        return max(min(waits), 0.0) if waits else None

    def report(self) -> dict[str, list[dict[str, Any]]]:
        now = self._clock()
        return {name: [m.report(now) for m in mirrors] for name, mirrors in self.health.items()}


async def _closing(stack: AsyncExitStack, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async with stack:
        async for chunk in chunks:
            yield chunk


def _download(response: httpx.Response, offset: int, chunks: AsyncIterator[bytes]) -> Download:
    validator = response.headers.get("etag")
    if not validator or validator.startswith("W/"):
        validator = response.headers.get("last-modified")
    length = _int(response.headers.get("content-length"))
    if response.status_code == 206:
        start, total = _content_range(response.headers.get("content-range", ""))
        if start != offset:
            raise UpstreamError(f"{response.url}: asked for bytes from {offset}, got {start}")
        return Download(start, total, validator, chunks, partial=True)
    return Download(0, length, validator, chunks)


def _content_range(header: str) -> tuple[int | None, int | None]:
    """`bytes 100-199/1000` -> (100, 1000); what is missing or unreadable is None."""
    unit, _, spec = header.partition(" ")
    span, _, total = spec.partition("/")
    if unit != "bytes":
        return None, None
    return _int(span.partition("-")[0]), _int(total)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


async def _parse(func: Callable[..., T], *args: Any) -> T:
    """Parse small bodies inline; large ones (numpy's page, an index root of 700,000 names)
    in a worker thread, so the event loop keeps serving meanwhile."""
    body = next((a for a in args if isinstance(a, bytes)), b"")
    if len(body) <= _PARSE_INLINE_LIMIT:
        return func(*args)
    return await anyio.to_thread.run_sync(func, *args)


def _describe(exc: httpx.HTTPError) -> str:
    kind = type(exc).__name__
    detail = str(exc)
    return f"{kind}: {detail}" if detail else kind
