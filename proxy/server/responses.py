"""The HTTP answers for files: a committed file from disk (or by nginx), and a body streamed
from a download or from upstream that is cut short, never completed, when it breaks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..core.config import Config
from ..core.model import CacheResult
from .errors import UpstreamError
from .memory import CHUNKS

IMMUTABLE = "public, max-age=31536000, immutable"
OCTET_STREAM = "application/octet-stream"


class BodyCut(Exception):
    """Ends a response whose body cannot be completed: the server then drops the connection,
    so the client sees a short body, never a complete-looking bad file."""


class QuietCuts(logging.Filter):
    """Leaves out of uvicorn's log the traceback of a deliberate cut: the download already
    logged why."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], BodyCut))


def quiet_body_cuts() -> None:
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietCuts) for f in server_log.filters):
        server_log.addFilter(QuietCuts())


class BlobResponse(FileResponse):
    """Chunks of 1 MiB (starlette's 64 KiB default costs several times the CPU per GiB
    served), smaller when many clients are served at once (see `ChunkBudget`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with CHUNKS.chunk() as self.chunk_size:
            await super().__call__(scope, receive, send)


def cached_response(config: Config, path: Path, media_type: str = OCTET_STREAM) -> Response:
    """A committed file (named by its sha256)."""
    headers = file_headers(CacheResult.HIT, ETag=f'"{path.name}"')
    prefix = config.x_accel_redirect
    if prefix is not None and media_type == OCTET_STREAM:
        sha256 = path.name
        headers["X-Accel-Redirect"] = f"{prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}"
        return headers_only(headers)
    return BlobResponse(path, media_type=media_type, headers=headers)


def file_headers(cache: CacheResult, **more: str) -> dict[str, str]:
    return {"Cache-Control": IMMUTABLE, "X-Cache": cache.value, **more}


def streaming(
    body: AsyncIterator[bytes],
    status: int,
    headers: Mapping[str, str],
    close: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """A body sent as it comes; `close` releases what it holds (an upstream response) when
    the answer ends, however it ends: also when the client left before the first chunk,
    when a generator's own `finally` would never run."""
    return _Streaming(
        _cut_on_failure(body), status_code=status, headers=headers, media_type=OCTET_STREAM,
        close=close,
    )  # fmt: skip


class _Streaming(StreamingResponse):
    def __init__(
        self, *args: Any, close: Callable[[], Awaitable[None]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._close is not None:
                await self._close()


def headers_only(headers: Mapping[str, str], status: int = 200) -> Response:
    response = Response(status_code=status, media_type=OCTET_STREAM)
    response.headers.update(headers)
    if "Content-Length" not in headers:
        del response.headers["content-length"]
    return response


async def _cut_on_failure(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in body:
            yield chunk
    except UpstreamError as exc:  # the download (or the upstream range) broke off
        raise BodyCut(str(exc)) from None
