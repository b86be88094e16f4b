"""Answering a file request: from disk when cached, else from the download under way.

A cached file is a `FileResponse` (HEAD, Range, If-Range, 416 done by starlette), or with
`offload.x_accel_redirect` an empty answer that tells nginx which file to send. A file not yet
on disk joins its download: the whole file streams as it arrives, a range already downloaded
(or about to be) is read from the growing file, and a range further ahead comes straight from
upstream while the download goes on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..core.config import Config, Upstream
from ..core.model import FileLink, ProjectPage
from ..core.ranges import Unsatisfiable, byte_range
from .fill import Fills
from .memory import CHUNKS
from .upstream import UpstreamClient, UpstreamError

log = logging.getLogger("pypi_proxy.files")

IMMUTABLE = "public, max-age=31536000, immutable"
OCTET_STREAM = "application/octet-stream"


class BodyCut(Exception):
    """Ends a response whose body cannot be completed: the server then drops the connection,
    so the client sees a short body, never a complete-looking bad file."""


class _QuietCuts(logging.Filter):
    # The fill already logged why; uvicorn's traceback for the deliberate cut says nothing more.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], BodyCut))


logging.getLogger("uvicorn.error").addFilter(_QuietCuts())


class BlobResponse(FileResponse):
    """Chunks of 1 MiB (starlette's 64 KiB default costs several times the CPU per GiB
    served), smaller when many clients are served at once (see `ChunkBudget`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with CHUNKS.chunk() as self.chunk_size:
            await super().__call__(scope, receive, send)


def cached_response(config: Config, path: Path) -> Response:
    """A committed file (named by its sha256)."""
    headers = {"ETag": f'"{path.name}"', "Cache-Control": IMMUTABLE, "X-Cache": "HIT"}
    prefix = config.x_accel_redirect
    if prefix is not None:
        sha256 = path.name
        headers["X-Accel-Redirect"] = f"{prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}"
        return _headers_only(headers)
    return BlobResponse(path, media_type=OCTET_STREAM, headers=headers)


async def file_response(
    request: Request,
    config: Config,
    fills: Fills,
    client: UpstreamClient,
    upstream: Upstream,
    page: ProjectPage,
    link: FileLink,
) -> Response:
    path = fills.cached(link)
    if path is not None:
        return cached_response(config, path)
    if not fills.under_way(link) and not await fills.make_room(link):
        log.warning("no room in the cache for %s: passing it through uncached", link.filename)
        body = await client.passthrough(upstream, page, link)
        if body is None:
            raise UpstreamError(f"no mirror serves {link.filename}")
        headers = {"Cache-Control": IMMUTABLE, "X-Cache": "PASS"}
        if link.size is not None:
            headers["Content-Length"] = str(link.size)
        return _streaming(body, 200, headers)

    fill = fills.start(upstream, page, link)
    await fill.started.wait()
    if fill.error is not None:
        raise fill.error
    path = fill.path  # a small file may be done already
    if path is not None:
        return cached_response(config, path)

    # Not the sha256 (the ETag once cached): a client resuming a download that failed
    # verification must get the whole file again, not the rest of it after a bad prefix.
    etag = f'"fill-{fill.token}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "X-Cache": "MISS"}
    span = None
    if fill.size is not None:  # ranges need the size; without it, none are offered
        headers["Accept-Ranges"] = "bytes"
        if request.headers.get("if-range") in (None, etag, f'"{link.sha256}"'):
            try:
                span = byte_range(request.headers.get("range"), fill.size)
            except Unsatisfiable:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{fill.size}"})
    if span is None:
        if fill.size is not None:
            headers["Content-Length"] = str(fill.size)
        if request.method == "HEAD":
            return _headers_only(headers)
        return _streaming(fill.body(), 200, headers)

    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{fill.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return _headers_only(headers, status=206)
    body = None
    if start > fill.written:  # far ahead of the download: ask upstream for just this range
        body = await client.passthrough(upstream, page, link, start, end)
    return _streaming(body or fill.body(start, end), 206, headers)


def _streaming(body: AsyncIterator[bytes], status: int, headers: Mapping[str, str]) -> Response:
    return StreamingResponse(
        _cut_on_failure(body), status_code=status, headers=headers, media_type=OCTET_STREAM
    )


async def _cut_on_failure(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in body:
            yield chunk
    except UpstreamError as exc:  # the download (or the upstream range) broke off
        raise BodyCut(str(exc)) from None


def _headers_only(headers: Mapping[str, str], status: int = 200) -> Response:
    response = Response(status_code=status, media_type=OCTET_STREAM)
    response.headers.update(headers)
    if "Content-Length" not in headers:
        del response.headers["content-length"]
    return response
