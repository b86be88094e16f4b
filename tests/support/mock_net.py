"""Upstream answers for `httpx.MockTransport`, for the in-process tests of the unit tier."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx


async def streamed(data: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body that streams: httpx reads a body given as bytes at once, and then has no raw
    stream left for a proxy that reads the file by chunks."""
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def file_response(request: httpx.Request, data: bytes, *, ranges: bool = True) -> httpx.Response:
    """A file as a static file server sends it: one byte range (`a-b`, `a-`, `-n`) as a 206,
    else the whole file."""
    spec = request.headers.get("range", "")
    if ranges and spec.startswith("bytes=") and "-" in spec:
        first, last = spec.removeprefix("bytes=").split("-")
        start = max(len(data) - int(last), 0) if not first else int(first)
        end = len(data) if not first or not last else min(int(last) + 1, len(data))
        span = f"bytes {start}-{end - 1}/{len(data)}"
        headers = {"Content-Range": span, "Content-Length": str(end - start)}
        return httpx.Response(206, content=streamed(data[start:end]), headers=headers)
    return httpx.Response(200, content=streamed(data), headers={"Content-Length": str(len(data))})
