"""One download's bytes, from the file's sources into its part file: the first source to
answer (raced, see `source_race`), then the next ones in turn while the file is not whole,
each resumed where its body broke off; a big file as several ranges at once (see
`segmented`). What the bytes are worth is the caller's to judge (see `CacheFiller`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, BinaryIO

from ..core.model import FileLink, FileOrigin
from .blobs import BlobStore
from .errors import NotFoundUpstream, UpstreamError
from .fill import Fill
from .mirror_requests import UpstreamBody
from .segmented import SegmentedDownload
from .source_race import Lookups, Source
from .upstream import Opened, UpstreamClient

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

log = logging.getLogger("pypi_proxy.fill")

Delivered = Source | SegmentedDownload  # who sent the bytes of a download
# Requests one fill makes to a source that keeps breaking off, before it tries the next.
ATTEMPTS_PER_SOURCE = 3


@dataclass(frozen=True)
class Target:
    """Where a download goes: its fill, the part file and the digest of what it holds."""

    fill: Fill
    out: BinaryIO
    digest: Hash
    origin: FileOrigin


class Transfers:
    def __init__(
        self,
        client: UpstreamClient,
        store: BlobStore,
        segments: tuple[int, int],
        sources: Callable[[FileOrigin], AsyncGenerator[Source, None]],
    ) -> None:
        """`segments`: ranges fetched at once of a file of at least that many bytes;
        `sources`: a file's sources, in the order to try them."""
        self._client, self._store, self._sources = client, store, sources
        self._segments, self._segment_above = segments

    async def run(self, target: Target) -> Delivered:
        """Write the file into `target.out`. Returns the source that delivered the end, or
        the segmented download."""
        fill, origin = target.fill, target.origin
        nothing = UpstreamError(
            f"{origin.upstream.name}: no mirror to fetch {fill.filename} from",
            self._client.next_probe(origin.upstream),
        )
        async with Lookups(self._sources(origin)) as sources:
            ask = partial(self._client.open_source, offset=fill.written)
            race = self._client.race(sources, ask, discard=_close)
            opened = await race.first(nothing)
            source: Source | None = opened.source
            first: Opened | None = opened
            error: Exception = nothing
            while source is not None:
                result = await self._from_source(target, source, first)
                if not isinstance(result, Exception):
                    return result
                error, source, first = result, await sources.next(), None
            raise error

    async def _from_source(
        self, target: Target, source: Source, first: Opened | None
    ) -> Delivered | Exception:
        """The file from one source, starting with its response `first` if there is one:
        resumed where a body broke off (`Range`, with `If-Range`) a few times while it makes
        progress. What it delivered, or why it did not."""
        fill, url = target.fill, source[1]
        error: Exception = UpstreamError(f"{url}: nothing fetched")
        validator: str | None = None
        for _ in range(ATTEMPTS_PER_SOURCE):
            before = fill.written
            try:
                opened = first or await self._client.open_source(source, before, validator)
                first = None
                validator = opened.body.validator
                async with AsyncExitStack() as ending:
                    ending.push_async_exit(opened)  # a body that breaks off counts as such
                    self._begin(fill, target.origin.link, opened.body.total)
                    if self._splits(fill, opened.body):
                        ending.pop_all()  # the segmented download ends it
                        return await self._segmented(target, opened)
                    await _append(fill, target.out, target.digest, opened.body)
                if fill.size is None or fill.written == fill.size:
                    return source
                error = UpstreamError(f"{url}: ended at byte {fill.written} of {fill.size}")
            except NotFoundUpstream as exc:
                return exc
            except UpstreamError as exc:
                error = exc
            if fill.written == before:
                break  # no progress from this source: try the next
            log.info("%s: resuming at byte %d from %s", fill.filename, fill.written, url)
        return error

    async def _segmented(self, target: Target, opened: Opened) -> SegmentedDownload:
        fill = target.fill
        note = partial(self._store.write_prefix, fill.key)
        download = SegmentedDownload(
            fill, target.out, target.digest, self._client, self._segments, note
        )
        more = self._sources(target.origin)
        if opened.source[0] is self._client.mirrors.bucket:
            more = _nothing_more()  # the bucket has it: every range from there, none upstream
        await download.run(opened, more)
        return download

    def _splits(self, fill: Fill, body: UpstreamBody) -> bool:
        """Whether the rest of this response's file comes as several ranges at once."""
        return (
            self._segments > 1
            and fill.written == 0
            and body.ranges
            and fill.size is not None
            and fill.size >= self._segment_above
        )

    def _begin(self, fill: Fill, link: FileLink, total: int | None) -> None:
        """Settle the file's size from the listing or the first response (a source whose
        size disagrees is serving another file), and note it for other processes."""
        known = link.size if link.size is not None else fill.size
        if known is not None and total is not None and total != known:
            raise UpstreamError(f"upstream's file has {total} bytes, expected {known}")
        size = known if known is not None else total
        if not fill.started.is_set():
            self._store.write_size(fill.key, size)
        fill.begin(size)


async def _append(fill: Fill, out: BinaryIO, digest: Hash, body: UpstreamBody) -> None:
    """Write what the file still lacks from a response, which starts at `body.start`: the
    offset asked for, or 0 when the source ignored the Range (the part already held is then
    skipped)."""
    skip = fill.written - body.start
    async for chunk in body.chunks:
        if skip:
            dropped = min(skip, len(chunk))
            chunk, skip = chunk[dropped:], skip - dropped
            if not chunk:
                continue
        if fill.size is not None and fill.written + len(chunk) > fill.size:
            raise UpstreamError(f"upstream sends more than {fill.size} bytes")
        out.write(chunk)
        digest.update(chunk)
        fill.advance(fill.written + len(chunk))


async def _nothing_more() -> AsyncGenerator[Source, None]:
    return
    yield  # an async generator that yields nothing


async def _close(opened: Opened) -> None:
    await opened.close()
