"""A conda index file downloaded whole from the first of its group's mirrors that has it, into
a file of its own, and made ready there (see `conda_index`)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import httpx

from ..core.config import Upstream
from ..core.health import MirrorHealth
from .errors import UpstreamError
from .http_client import NOT_FOUND
from .upstream import UpstreamClient

P = TypeVar("P")


@dataclass(frozen=True)
class Downloaded(Generic[P]):
    """A body downloaded into a file and made ready (`ready`; None: the copy the proxy holds
    is current, a 304), with the URL it came from and the validators to ask again with."""

    url: str
    ready: P | None
    etag: str | None
    last_modified: str | None


class WholeDownloads:
    """Index files of at most `limit` bytes, from the mirrors `client` asks."""

    def __init__(self, client: UpstreamClient, limit: int) -> None:
        self._client, self._limit = client, limit

    async def get(
        self,
        upstream: Upstream,
        urls: Callable[[str], str],
        into: Path,
        headers: dict[str, str],
        ready: Callable[[Path, str], Awaitable[P]],
    ) -> Downloaded[P] | None:
        """A whole body from the first of the group's mirrors that has it (`urls`: its URL
        on a mirror) into a new file beside `into` that `ready` takes from there (with the
        URL it came from; a ValueError if the body is not what was asked: that mirror has
        failed). Asked with `headers`: validators (If-None-Match, If-Modified-Since), and
        `Accept-Encoding: identity` for bytes to keep as they are (a compressed file); any
        other body is decoded. None when no mirror has it, also when those that answered
        said so and the others failed: they are copies of one another, and a client probing
        for a format no mirror has must get its 404 while one is down."""
        client, decoded = self._client, headers.get("Accept-Encoding") != "identity"
        lacking = []

        async def ask(mirror: MirrorHealth) -> Downloaded[P] | None:
            url = urls(mirror.url)
            async with client.requests.request(mirror, url, headers, file=True) as response:
                status, url = response.status_code, str(response.url)
                if status in NOT_FOUND:
                    lacking.append(mirror)
                    return None
                etag, modified = response.headers.get("etag"), response.headers.get("last-modified")
                if status == 304:
                    return Downloaded(url, None, etag, modified)
                part = into.with_name(f".{into.name}.{uuid.uuid4().hex}.part")
                try:
                    await self._write(mirror, response, part, decoded)
                    made = await ready(part, url)
                except ValueError as exc:
                    raise client.mirrors.failed(mirror, f"{into.name}: {exc}") from None
                finally:
                    part.unlink(missing_ok=True)
                return Downloaded(url, made, etag, modified)

        try:
            return await client.failover(upstream, into.name, ask)
        except UpstreamError:
            if lacking:
                return None
            raise

    async def _write(
        self, mirror: MirrorHealth, response: httpx.Response, part: Path, decoded: bool
    ) -> None:
        """The body into `part`; a body that breaks off has failed its mirror already."""
        requests, limit = self._client.requests, self._limit
        with open(part, "wb") as out:
            size = 0
            async for chunk in requests.chunks(mirror, response, decoded=decoded):
                size += len(chunk)
                if size > limit:
                    raise self._client.mirrors.failed(mirror, f"body larger than {limit:,} bytes")
                out.write(chunk)
