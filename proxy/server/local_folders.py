"""Local folders as mirrors (see `core.local_folders`): an httpx transport for `local://` URLs
that answers from the folder what a simple index would, so that a folder goes through the
same page cache, downloads, verification and routing as a mirror on the network.

A file is hashed once, and again only when its size or modification time changes. A file
whose name is not a distribution's is skipped with a log line, never served under another
name. Only files right in a configured folder are ever read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from email.parser import BytesHeaderParser
from pathlib import Path

import anyio
import httpx

from ..core.config import Config
from ..core.local_folders import (
    HOSTED,
    SCHEME,
    LocalFile,
    folder_of,
    is_local,
    project_list,
    project_of,
    project_page,
)
from ..core.model import InvalidName, NormalizedName, normalize
from ..core.ranges import Unsatisfiable, byte_range
from ..core.wheel import NoMetadata, core_metadata
from .blobs import file_sha256

log = logging.getLogger("pypi_proxy.local")

JSON = "application/vnd.pypi.simple.v1+json"
CHUNK = 256 * 1024


def folders(config: Config) -> dict[str, Path]:
    """Every folder the config serves as a mirror, by its mirror URL: a local one where it
    is, a hosted group's uploads under the cache directory."""
    found = {}
    for upstream in config.upstreams:
        for url in upstream.mirrors:
            if upstream.hosted is not None:
                found[url] = config.cache_dir / HOSTED / upstream.name
            elif is_local(url):
                found[url] = folder_of(url)
    return found


def local_mounts(config: Config) -> dict[str, httpx.AsyncBaseTransport] | None:
    """The transports for an HTTP client that asks the config's folders too."""
    roots = folders(config)
    if not roots:
        return None
    transport = LocalFolders(roots)
    return {f"{SCHEME}://": transport, f"{HOSTED}://": transport}


class LocalFolders(httpx.AsyncBaseTransport):
    def __init__(self, roots: dict[str, Path]) -> None:
        """`roots`: each folder, by its mirror URL."""
        self._roots = roots
        self._known: dict[tuple[str, int, int], LocalFile] = {}  # (path, size, mtime) -> file
        self._skipped: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        root = next((r for r in self._roots if url.startswith(r)), None)
        if root is None:
            return _status(404)
        rest = url[len(root) :]
        if rest == "":
            files = await anyio.to_thread.run_sync(self._scan, self._roots[root])
            return _json(project_list({n for n, _ in files}))
        if rest.endswith("/"):
            return await self._page(root, rest[:-1])
        return await self._file(self._roots[root], rest, request.headers.get("range"))

    async def _page(self, root: str, raw: str) -> httpx.Response:
        try:
            name = normalize(raw)
        except InvalidName:
            return _status(404)
        files = await anyio.to_thread.run_sync(self._scan, self._roots[root])
        mine = [f for n, f in files if n == name]
        return _json(project_page(root, name, mine)) if mine else _status(404)

    def _scan(self, folder: Path) -> list[tuple[NormalizedName, LocalFile]]:
        """The distributions right in the folder (hashed if new or changed since)."""
        found = []
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("local folder %s: %s", folder, exc.strerror or exc)
            return []
        for entry in entries:
            if not entry.is_file() or entry.name.startswith("."):  # an upload being written
                continue
            name = project_of(entry.name)
            if name is None:
                if entry.path not in self._skipped:
                    self._skipped.add(entry.path)
                    log.warning("local folder: skipped %s: not a wheel or sdist", entry.path)
                continue
            stat = entry.stat()
            key = (entry.path, stat.st_size, stat.st_mtime_ns)
            if key not in self._known:
                self._known[key] = _described(Path(entry.path), stat.st_size)
            found.append((name, self._known[key]))
        return found

    async def _file(self, folder: Path, filename: str, range_header: str | None) -> httpx.Response:
        if "/" in filename or filename.startswith(".") or project_of(filename) is None:
            return _status(404)
        path = folder / filename
        try:
            size = path.stat().st_size
        except OSError:
            return _status(404)
        try:
            span = byte_range(range_header, size)
        except Unsatisfiable:
            return _status(416)
        start, end = span or (0, size)
        headers = {"Content-Length": str(end - start), "Accept-Ranges": "bytes"}
        if span is None:
            return httpx.Response(200, headers=headers, stream=_Body(path, 0, size))
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return httpx.Response(206, headers=headers, stream=_Body(path, start, end))


class _Body(httpx.AsyncByteStream):
    def __init__(self, path: Path, start: int, end: int) -> None:
        self._path, self._start, self._end = path, start, end

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async with await anyio.open_file(self._path, "rb") as file:
            await file.seek(self._start)
            left = self._end - self._start
            while left > 0:
                chunk = await file.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk


def _described(path: Path, size: int) -> LocalFile:
    """A file's sha256, and a wheel's Requires-Python from its metadata."""
    requires = None
    if path.name.endswith(".whl"):
        try:
            with open(path, "rb") as wheel:
                metadata = core_metadata(wheel, path.name)
            requires = BytesHeaderParser().parsebytes(metadata).get("Requires-Python")
        except NoMetadata as exc:
            log.warning("local folder: %s: no readable metadata (%s)", path, exc)
    return LocalFile(path.name, size, file_sha256(path), str(requires) if requires else None)


def _json(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"Content-Type": JSON}, content=body)


def _status(code: int) -> httpx.Response:
    return httpx.Response(code, content=b"")
