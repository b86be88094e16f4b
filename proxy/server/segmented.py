"""One big file fetched as several byte ranges at once, over the mirrors that list it.

A mirror that caps each connection (the PyTorch index's CDN) or is tuned for it (Huawei
Cloud's) sends a big file several times faster this way. The first response, a plain GET,
fetches the first span; the others are Range requests spread over the file's sources as they
are found (see `core.segments` for how the work moves). Each writes at its offsets into the
part file. The sha256 is computed over the prefix written without a gap as it grows, in
steps, and readers see exactly that prefix (`Fill.advance`), so what they get and what is
verified in the end are the same bytes, and the whole-file check and the held-back last
byte stay as for one stream.

Bytes that do not match the sha256 are found only at the end, with no telling which mirror
sent them: `repair` fetches the other mirrors' pieces again from one mirror at a time until
the file matches, and the pieces whose bytes changed name the mirror that sent them wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio

from ..core.segments import Span, Spans
from .errors import NotFoundUpstream, UpstreamError
from .fill import CHUNK, Fill
from .source_race import Source
from .upstream import Opened, UpstreamClient

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

log = logging.getLogger("pypi_proxy.fill")

# Requests in a row that bring no byte from a source before it is left out of this download.
ATTEMPTS_PER_SOURCE = 3
# The verified prefix (what readers see) grows in steps of at least this much.
HASH_STEP = 1024 * 1024
_HASH_MOST = 8 * 1024 * 1024  # and at most this much per read
# How long the first ranges wait for the file's other sources to be looked up.
SPREAD_WAIT = 1.0


@dataclass(eq=False)
class _Source:
    mirror_url: Source
    strikes: int = 0  # requests in a row that brought nothing
    dropped: bool = False


@dataclass(eq=False)
class _Piece:
    """Bytes `start` to `end` one response wrote, and where they came from."""

    start: int
    end: int
    source: _Source


class _NoRange(UpstreamError):
    """The source answered a Range request with something else."""


class SegmentedDownload:
    def __init__(
        self,
        fill: Fill,
        out: BinaryIO,
        digest: Hash,
        client: UpstreamClient,
        count: int,
        on_prefix: Callable[[int | None], None],
    ) -> None:
        assert fill.size is not None
        self._fill, self._out, self._digest, self._client = fill, out, digest, client
        self._size = fill.size
        self._on_prefix = on_prefix
        self._spans = Spans.even(self._size, count)
        self._count = len(self._spans)  # connections: one per range it starts with
        self._sources: list[_Source] = []
        self._only: _Source | None = None  # while repairing: the one source asked
        self._pieces: list[_Piece] | None = []  # None while repairing: pieces are known
        self._turn = 0
        self._spread_by = 0.0
        self._found_all = asyncio.Event()
        self._wrote = asyncio.Event()
        self._ending = False
        self._error: Exception = UpstreamError(f"{fill.filename}: no mirror sends its ranges")

    @property
    def sources(self) -> list[Source]:
        """The sources whose bytes are in the file."""
        return _named(p.source for p in self._pieces or [])

    async def run(self, first: Opened, more: AsyncGenerator[Source, None]) -> None:
        """Fetch the file, the first span from `first` (a whole-file response, ended once
        the span is written), the others from its source and those `more` yields; hashing
        the prefix into the digest as it grows."""
        log.info("%s: fetching %d ranges at once", self._fill.filename, self._count)
        self._on_prefix(0)  # before the first byte lands ahead, for other processes to see
        self._spread_by = anyio.current_time() + SPREAD_WAIT
        source = _Source(first.source)
        self._sources.append(source)
        discovery = asyncio.create_task(self._discover(more, first.source))
        hashing = asyncio.create_task(self._hash())
        span = self._spans.claim()
        assert span is not None and span.start == 0
        try:
            await asyncio.gather(
                self._first(span, source, first),
                *(self._worker() for _ in range(self._count - 1)),
            )
        finally:
            await first.close()  # if the first span never got to it
            discovery.cancel()
            self._ending = True  # the hasher takes what is there, then stops
            self._wrote.set()
            await asyncio.gather(discovery, hashing, return_exceptions=True)
        failed = None if hashing.cancelled() else hashing.exception()
        if failed is not None:
            raise failed
        if not self._spans.done:
            # Back to the verified prefix, where one stream can go on (see `CacheFiller`).
            self._out.truncate(self._fill.written)
            self._out.seek(self._fill.written)
            self._on_prefix(None)
            raise self._error

    async def repair(self, expected: str) -> list[Source] | None:
        """Make the file match `expected` by fetching the pieces of the other sources again
        from one source at a time; the sources whose bytes were wrong, or None if no source
        makes it match."""
        pieces, self._pieces = self._pieces or [], None
        for candidate in [s for s in self._sources if not s.dropped]:
            others = [p for p in pieces if p.source is not candidate]
            if not others:
                continue
            log.info("%s: fetching %d pieces again from %s", self._fill.filename,
                     len(others), candidate.mirror_url[1])  # fmt: skip
            before = [await self._hash_of(p.start, p.end) for p in others]
            self._spans = Spans([Span(p.start, p.end, p.start) for p in others])
            self._only = candidate
            await asyncio.gather(*(self._worker() for _ in range(self._count)))
            if not self._spans.done:
                continue
            after = [await self._hash_of(p.start, p.end) for p in others]
            wrong = [p.source for p, b, a in zip(others, before, after, strict=True) if b != a]
            for piece in others:
                piece.source = candidate
            if await self._hash_of(0, self._size) == expected:
                return _named(wrong)
        return None

    # -- fetching ------------------------------------------------------------------------

    async def _first(self, span: Span, source: _Source, first: Opened) -> None:
        try:
            async with first:
                await self._write(span, source, first.body.chunks)
        except UpstreamError as exc:
            self._failed(source, exc, span)
        finally:
            span.busy = False
        await self._worker()

    async def _worker(self) -> None:
        """Fetch spans until none is left worth taking, or no source to take it from."""
        while (span := self._spans.claim()) is not None:
            source = await self._pick()
            if source is None:
                span.busy = False
                return
            try:
                await self._fetch(span, source)
            except NotFoundUpstream as exc:
                self._error, source.dropped = exc, True
            except UpstreamError as exc:
                self._failed(source, exc, span)
            finally:
                span.busy = False

    async def _fetch(self, span: Span, source: _Source) -> None:
        mirror, url = source.mirror_url
        open_file = self._client.open_file(mirror, url, offset=span.pos, end=span.end)
        async with open_file as body:
            if not body.partial:
                raise _NoRange(f"{url}: answers a Range request with the whole file")
            if body.total not in (None, self._size):
                raise _NoRange(f"{url}: has {body.total} bytes, expected {self._size}")
            await self._write(span, source, body.chunks)

    async def _write(self, span: Span, source: _Source, chunks: AsyncIterator[bytes]) -> None:
        """Write a response's bytes from `span.pos` until the span is done (its end may come
        closer meanwhile, when another connection takes the far half)."""
        piece = _Piece(span.pos, span.pos, source)
        if self._pieces is not None:
            self._pieces.append(piece)
        async for chunk in chunks:
            room = span.end - span.pos
            data = chunk if len(chunk) <= room else chunk[:room]
            self._out.seek(span.pos)
            self._out.write(data)
            before, span.pos = span.pos, span.pos + len(data)
            piece.end, source.strikes = span.pos, 0
            if span.done or before // HASH_STEP != span.pos // HASH_STEP:
                self._wrote.set()  # the hasher has a step to take, perhaps
            if span.done:
                return
        raise UpstreamError(f"{source.mirror_url[1]}: range ended at byte {span.pos}")

    def _failed(self, source: _Source, error: UpstreamError, span: Span) -> None:
        self._error = error
        source.strikes += 1
        if isinstance(error, _NoRange) or source.strikes >= ATTEMPTS_PER_SOURCE:
            source.dropped = True
        log.info("%s: range from byte %d: %s", self._fill.filename, span.pos, error)

    async def _pick(self) -> _Source | None:
        """The next source for a request, in turn: within the first moments, once the other
        sources are found (so the first ranges spread over them); waiting for the sources
        still being looked up when every one found so far has been left out."""
        with anyio.move_on_after(self._spread_by - anyio.current_time()):
            await self._found_all.wait()
        while True:
            if self._only is not None:
                return None if self._only.dropped else self._only
            alive = [s for s in self._sources if not s.dropped]
            if alive:
                self._turn += 1
                return alive[self._turn % len(alive)]
            if self._found_all.is_set():
                return None
            await self._found_all.wait()

    async def _discover(self, more: AsyncGenerator[Source, None], first: Source) -> None:
        try:
            async with aclosing(more) as sources:
                async for source in sources:
                    if source != first:
                        self._sources.append(_Source(source))
        finally:
            self._found_all.set()

    # -- hashing -------------------------------------------------------------------------

    async def _hash(self) -> None:
        """Feed the digest the prefix written without a gap, as it grows; what it has taken
        is what readers may read."""
        hashed = 0
        while hashed < self._size:
            ready = self._spans.prefix()
            if ready - hashed < HASH_STEP and ready < self._size and not self._ending:
                self._wrote.clear()
                await self._wrote.wait()
                continue
            if ready == hashed:
                return  # ending short of the end
            length = min(ready - hashed, _HASH_MOST)
            await anyio.to_thread.run_sync(_feed, self._digest, self._fill.part, hashed, length)
            hashed += length
            self._on_prefix(hashed)
            self._fill.advance(hashed)

    async def _hash_of(self, start: int, end: int) -> str:
        return await anyio.to_thread.run_sync(_sha256_of, self._fill.part, start, end)


def _named(sources: Iterable[_Source]) -> list[Source]:
    return [s.mirror_url for s in dict.fromkeys(sources)]


def _feed(digest: Hash, path: Path, offset: int, length: int) -> None:
    with open(path, "rb") as f:
        f.seek(offset)
        while length > 0:
            chunk = f.read(min(CHUNK, length))
            if not chunk:
                raise UpstreamError(f"{path.name}: shorter than its written prefix")
            digest.update(chunk)
            length -= len(chunk)


def _sha256_of(path: Path, start: int, end: int) -> str:
    digest = hashlib.sha256()
    _feed(digest, path, start, end - start)
    return digest.hexdigest()
