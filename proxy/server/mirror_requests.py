"""One request to one mirror: sent with the progress timeouts (see `http_client`), its answer
checked, and what came of it recorded in the mirror's health (see `mirrors`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import anyio
import httpx

from ..core.config import Config
from ..core.health import MirrorHealth
from ..core.ranges import content_range, digits
from .destinations import Destinations, LinkRefused
from .errors import NotFoundUpstream, UpstreamError
from .hedging import headers_arrived
from .http_client import NOT_FOUND, RequestFailed, build_http_client, mapped_errors, send
from .local_folders import local_mounts
from .metrics import Metrics
from .mirrors import MirrorFailed, Mirrors

# Redirects one request follows (a mirror sends file misses on to another, USTC to TUNA).
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class UpstreamBody:
    """An upstream file response whose body has not been read yet.

    `start` is where the body begins in the file: the offset asked for when the mirror honoured
    the Range, 0 when it sent the whole file instead. `total` is the file's full size, if known.
    """

    start: int
    total: int | None
    validator: str | None
    chunks: AsyncIterator[bytes]
    partial: bool = False  # a 206: the mirror honoured the Range
    ranges: bool = False  # the mirror says it honours Range requests for this file


class MirrorRequests:
    def __init__(
        self,
        config: Config,
        mirrors: Mirrors,
        metrics: Metrics,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._mirrors = mirrors
        self._metrics = metrics
        # Files over HTTP/1.1, a connection each (a CDN caps each connection, and the ranges
        # of a big file are several); the small answers (pages, metadata) over HTTP/2 where
        # a mirror offers it, many at once on one connection (see bench/http2.py).
        mounts = local_mounts(config)  # one transport for both: its hashes are shared
        self._files = build_http_client(
            config, transport=transport, follow_redirects=False, mounts=mounts
        )
        self._small = build_http_client(
            config, transport=transport, follow_redirects=False, http2=config.http2, mounts=mounts
        )
        self._turns: dict[str, asyncio.Semaphore] = {}  # by mirror URL (see `_turn`)
        self._destinations = Destinations(config.allow_private_links)

    async def aclose(self) -> None:
        await self._files.aclose()
        await self._small.aclose()

    async def fetch_small(self, mirror: MirrorHealth, url: str) -> bytes:
        """A whole small body (a `.metadata` file, a provenance)."""
        try:
            async with self.request(mirror, url, {}) as response:
                if response.status_code in NOT_FOUND:
                    raise NotFoundUpstream(url)
                return await self.body(mirror, response, self._config.limits.metadata_size)
        except MirrorFailed as exc:
            raise UpstreamError(f"{url}: {exc}") from None

    @asynccontextmanager
    async def open_file(
        self,
        mirror: MirrorHealth,
        url: str,
        *,
        offset: int = 0,
        end: int | None = None,
        if_range: str | None = None,
    ) -> AsyncIterator[UpstreamBody]:
        """Open a file download of bytes `offset` to `end` (exclusive; None: to the end of the
        file). The body streams from `UpstreamBody.chunks`."""
        headers = {"Accept-Encoding": "identity"}
        if offset or end is not None:
            headers["Range"] = f"bytes={offset}-{'' if end is None else end - 1}"
            if if_range:
                headers["If-Range"] = if_range
        try:
            async with self.request(mirror, url, headers, file=True) as response:
                if response.status_code in NOT_FOUND:
                    raise NotFoundUpstream(url)
                yield _upstream_body(response, offset, self.chunks(mirror, response))
        except MirrorFailed as exc:
            raise UpstreamError(f"{url}: {exc}") from None

    @asynccontextmanager
    async def request(
        self, mirror: MirrorHealth, url: str, headers: dict[str, str], *, file: bool = False
    ) -> AsyncIterator[httpx.Response]:
        """A response whose status is 200, 206 or not-found; anything else fails the mirror.
        The mirror counts as answering once the body was read to its end: one that answers
        and then keeps breaking off must still end up skipped. `file`: a file's body, over
        a connection of its own."""
        async with self._turn(mirror, file):
            started = self._mirrors.clock()
            http = self._files if file else self._small
            response = await self._send(http, mirror, url, headers)
            try:
                self._check(mirror, response, headers)
                latency = self._mirrors.clock() - started
                headers_arrived()
                yield response
                self._mirrors.succeeded(mirror, latency)
            finally:
                await response.aclose()

    def _turn(self, mirror: MirrorHealth, file: bool) -> AbstractAsyncContextManager[Any]:
        """A place among the small requests a mirror is asked at once: past a few, httpcore's
        pool costs more CPU per request the more are under way (3 times as much at 32 as at
        8, measured), so the rest wait their turn here, where waiting is free. A file's body
        takes no turn: it may take minutes."""
        if file:
            return nullcontext()
        turns = self._turns.get(mirror.url)
        if turns is None:
            turns = self._turns[mirror.url] = asyncio.Semaphore(self._config.limits.mirror_requests)
        return turns

    def _check(self, mirror: MirrorHealth, response: httpx.Response, sent: dict[str, str]) -> None:
        status = response.status_code
        if status == 304 and sent.keys() & {"If-None-Match", "If-Modified-Since"}:
            return  # what was asked, of a copy the proxy holds
        if status not in (200, 206) and status not in NOT_FOUND:
            retry_after = _retry_after(response.headers.get("retry-after"))
            raise self._mirrors.failed(mirror, f"HTTP {status}", retry_after=retry_after)
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        if encoded and sent.get("Accept-Encoding") == "identity":
            # File bytes are read raw, by offset: an encoded body would not hash right.
            # Pages and `.metadata` files may come compressed; httpx decodes them.
            raise self._mirrors.failed(mirror, "unexpected Content-Encoding")

    async def _send(
        self, http: httpx.AsyncClient, mirror: MirrorHealth, url: str, headers: dict[str, str]
    ) -> httpx.Response:
        """The response, once its headers are in, redirects followed here so that every
        place the request goes is checked (see `destinations`)."""
        for _ in range(MAX_REDIRECTS + 1):
            await self._destinations.before(mirror, url)
            with self._failures_of(mirror):
                response = await send(http, url, headers, self._config.first_byte_timeout)
            try:
                await self._destinations.after(mirror, response)
            except LinkRefused:
                await response.aclose()
                raise
            location = response.headers.get("location")
            if not response.is_redirect or location is None:
                return response
            await response.aclose()
            url = urljoin(str(response.url), location)
        raise self._mirrors.failed(mirror, f"more than {MAX_REDIRECTS} redirects")

    @contextmanager
    def _failures_of(self, mirror: MirrorHealth) -> Iterator[None]:
        """A request that failed as a failure of its mirror (a timeout a severe one); one
        that never left the proxy as a transient error of its own."""
        try:
            with mapped_errors():
                yield
        except RequestFailed as exc:
            if exc.local:
                raise UpstreamError(str(exc)) from None
            raise self._mirrors.failed(mirror, str(exc), severe=exc.timeout) from None

    async def body(self, mirror: MirrorHealth, response: httpx.Response, limit: int) -> bytes:
        """A whole body, decoded: at most `limit` bytes, within `timeouts.page` (a mirror
        that drips it has failed, as one that sends too much)."""
        deadline, parts, size = self._config.page_deadline, [], 0
        try:
            with self._failures_of(mirror), anyio.fail_after(deadline):
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise self._mirrors.failed(mirror, f"body larger than {limit:,} bytes")
                    parts.append(chunk)
        except TimeoutError:
            reason = f"body not complete within {deadline:g} s"
            raise self._mirrors.failed(mirror, reason, severe=True) from None
        return b"".join(parts)

    async def chunks(
        self, mirror: MirrorHealth, response: httpx.Response, *, decoded: bool = False
    ) -> AsyncIterator[bytes]:
        """A file body (`decoded`: of any Content-Encoding it came in); how fast it came
        counts towards the mirror's throughput."""
        started, size = self._mirrors.clock(), 0
        try:
            with self._failures_of(mirror):
                async for chunk in response.aiter_bytes() if decoded else response.aiter_raw():
                    size += len(chunk)
                    self._metrics.upstream_bytes(len(chunk))
                    yield chunk
        except MirrorFailed as exc:
            raise UpstreamError(str(exc)) from None
        finally:
            self._mirrors.transferred(mirror, size, self._mirrors.clock() - started)


def _upstream_body(
    response: httpx.Response, offset: int, chunks: AsyncIterator[bytes]
) -> UpstreamBody:
    validator = response.headers.get("etag")
    if not validator or validator.startswith("W/"):
        validator = response.headers.get("last-modified")
    if response.status_code == 206:
        start, total = content_range(response.headers.get("content-range", ""))
        if start != offset:
            raise UpstreamError(f"{response.url}: asked for bytes from {offset}, got {start}")
        return UpstreamBody(start, total, validator, chunks, partial=True, ranges=True)
    size = digits(response.headers.get("content-length"))
    ranges = response.headers.get("accept-ranges", "").strip().lower() == "bytes"
    return UpstreamBody(0, size, validator, chunks, ranges=ranges)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None
