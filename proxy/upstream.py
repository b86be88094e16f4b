"""Talking to upstream indexes: the only module that uses httpx.

Every httpx exception is mapped here to `UpstreamError` (transient: try later, answer 503) or
to a "not found" result, so the rest of the proxy never sees a library error.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import anyio
import httpx

from .config import Config, Upstream
from .model import NormalizedName, ProjectPage
from .parse import ParseError, parse_project_list, parse_project_page

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


def user_agent() -> str:
    try:
        return f"pypi-proxy/{version('pypi-proxy')}"
    except PackageNotFoundError:
        return "pypi-proxy/dev"


class UpstreamError(Exception):
    """An upstream could not answer now (refused, timed out, 5xx, garbage). Transient."""


class NotFoundUpstream(Exception):
    """The upstream answered, authoritatively, that this file does not exist."""


@dataclass(frozen=True)
class Download:
    """An upstream file response whose body has not been read yet."""

    url: str
    length: int | None
    chunks: AsyncIterator[bytes]


class UpstreamClient:
    def __init__(self, config: Config) -> None:
        context = ssl.create_default_context(
            cafile=str(config.ca_bundle) if config.ca_bundle else None
        )
        self._http = httpx.AsyncClient(
            # Progress timeouts, not a total: a 2.5 GB wheel that keeps moving is never cut.
            timeout=httpx.Timeout(
                connect=config.connect_timeout,
                read=config.read_timeout,
                write=config.read_timeout,
                pool=config.connect_timeout,
            ),
            follow_redirects=True,
            headers={"User-Agent": user_agent()},
            verify=context,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def project_page(self, upstream: Upstream, name: NormalizedName) -> ProjectPage | None:
        """The project's page from the first mirror that answers; None when it has no such
        project."""
        for mirror in upstream.mirrors:
            response = await self._get_page(upstream, mirror + f"{name}/")
            if response is None:
                continue
            if response.status_code in NOT_FOUND:
                return None
            try:
                return await _parse(parse_project_page, name, response.content, str(response.url))
            except ParseError as exc:
                log.warning("%s: %s: unparseable page: %s", upstream.name, response.url, exc)
        raise UpstreamError(f"upstream {upstream.name!r}: no mirror answered for {name}")

    async def project_names(self, upstream: Upstream) -> set[NormalizedName]:
        for mirror in upstream.mirrors:
            response = await self._get_page(upstream, mirror)
            if response is None or response.status_code != 200:
                continue
            try:
                return await _parse(parse_project_list, response.content)
            except ParseError as exc:
                log.warning("%s: %s: unparseable index root: %s", upstream.name, mirror, exc)
        raise UpstreamError(f"upstream {upstream.name!r}: no mirror answered for its index")

    async def _get_page(self, upstream: Upstream, url: str) -> httpx.Response | None:
        """The response of a mirror that answered (200 or not-found), or None after logging
        why it could not, so that the caller moves on to the next mirror."""
        try:
            response = await self._http.get(url, headers={"Accept": PAGE_ACCEPT})
        except httpx.HTTPError as exc:
            log.warning("%s: %s: %s", upstream.name, url, _describe(exc))
            return None
        if response.status_code == 200 or response.status_code in NOT_FOUND:
            return response
        log.warning("%s: %s: HTTP %s", upstream.name, url, response.status_code)
        return None

    async def fetch_small(self, url: str) -> bytes:
        """A whole small body (a `.metadata` file)."""
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{url}: {_describe(exc)}") from None
        if response.status_code in NOT_FOUND:
            raise NotFoundUpstream(url)
        if response.status_code != 200:
            raise UpstreamError(f"{url}: HTTP {response.status_code}")
        return response.content

    @asynccontextmanager
    async def download(self, url: str) -> AsyncIterator[Download]:
        """Open a file download; the body streams from `Download.chunks`."""
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code in NOT_FOUND:
                    raise NotFoundUpstream(url)
                if response.status_code != 200:
                    raise UpstreamError(f"{url}: HTTP {response.status_code}")
                if response.headers.get("content-encoding", "identity") != "identity":
                    # A wheel is already compressed; a re-encoded body would not hash right.
                    raise UpstreamError(f"{url}: unexpected Content-Encoding")
                length = response.headers.get("content-length")
                yield Download(
                    url=str(response.url),
                    length=int(length) if length and length.isdigit() else None,
                    chunks=_mapped(response.aiter_raw(), url),
                )
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{url}: {_describe(exc)}") from None


async def _mapped(chunks: AsyncIterator[bytes], url: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{url}: {_describe(exc)}") from None


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
