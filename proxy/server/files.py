"""How a file request is served: the one place that decides.

- cached: from disk (`responses.cached_response`);
- a download under way, or a new one when the cache has room: the whole file streams as it
  arrives, a range already downloaded (or about to be) is read from the growing file, and a
  range further ahead comes straight from upstream while the download goes on;
- no room in the cache: passed through from upstream, uncached.
"""

from __future__ import annotations

import logging
from functools import partial

import anyio
from starlette.requests import Request
from starlette.responses import Response

from ..core.model import CacheResult, FileOrigin
from ..core.ranges import Unsatisfiable, byte_range
from .errors import UpstreamError
from .fill import Fill
from .responses import cached_response, file_headers, headers_only, streaming
from .services import Services
from .upstream import Passed

log = logging.getLogger("pypi_proxy.files")

# Ranges of one file fetched from upstream at once, ahead of its download.
RANGES_AHEAD = 2


async def serve_file(request: Request, services: Services, origin: FileOrigin) -> Response:
    link, filler = origin.link, services.filler
    path = services.store.use(services.db.sha256_of(link))
    if path is not None:
        return cached_response(services.config, path)
    if not filler.under_way(link) and not await _room_for(services, link.size or 0):
        return await _pass_through(services, origin)
    fill = filler.start(origin)
    await fill.started.wait()
    if fill.error is not None:
        raise fill.error
    if fill.path is not None:  # a small file may be done already
        return cached_response(services.config, fill.path)
    return await _from_fill(request, services, fill, origin)


async def _room_for(services: Services, size: int) -> bool:
    """Whether the file fits in the cache; evicting least recently used files (off the event
    loop: it scans the store) only when it does not fit as it is."""
    store = services.store
    return store.has_room(size) or await anyio.to_thread.run_sync(store.make_room, size)


async def _pass_through(services: Services, origin: FileOrigin) -> Response:
    filename = origin.link.filename
    log.warning("no room in the cache for %s: passing it through uncached", filename)
    body = await services.client.passthrough(origin)
    if body is None:
        raise UpstreamError(f"no mirror serves {filename}")
    headers = file_headers(CacheResult.PASS)
    if origin.link.size is not None:
        headers["Content-Length"] = str(origin.link.size)
    return streaming(body.chunks, 200, headers, body.close)


async def _from_fill(
    request: Request, services: Services, fill: Fill, origin: FileOrigin
) -> Response:
    # Not the sha256 (the ETag once cached): a client resuming a download that failed
    # verification must get the whole file again, not the rest of it after a bad prefix.
    etag = f'"fill-{fill.token}"'
    headers = file_headers(CacheResult.MISS, ETag=etag)
    if fill.size is None:  # ranges need the size; without it, none are offered
        return _whole(request, fill, headers)
    headers["Accept-Ranges"] = "bytes"
    span = None
    if request.headers.get("if-range") in (None, etag, f'"{origin.link.sha256}"'):
        try:
            span = byte_range(request.headers.get("range"), fill.size)
        except Unsatisfiable:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{fill.size}"})
    if span is None:
        headers["Content-Length"] = str(fill.size)
        return _whole(request, fill, headers)

    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{fill.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return headers_only(headers, status=206)
    if start > fill.written and fill.ahead < RANGES_AHEAD:
        # Far ahead of the download: ask upstream for just this range. Only a few at once
        # per file; the rest wait for the download to get there.
        fill.ahead += 1
        body = None
        try:
            body = await services.client.passthrough(origin, start, end)
        finally:
            if body is None:
                fill.ahead -= 1
        if body is not None:
            return streaming(body.chunks, 206, headers, partial(_done_ahead, fill, body))
    return streaming(fill.body(start, end), 206, headers)


async def _done_ahead(fill: Fill, body: Passed) -> None:
    fill.ahead -= 1
    await body.close()


def _whole(request: Request, fill: Fill, headers: dict[str, str]) -> Response:
    if request.method == "HEAD":
        return headers_only(headers)
    return streaming(fill.body(), 200, headers)
