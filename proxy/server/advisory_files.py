"""The advisory files a policy names, loaded at start and again whenever they change.

A path is one JSON file, a zip of JSON files (the OSV export), or a directory of JSON files
(searched through). It is looked at every `POLL_INTERVAL` seconds. A change is taken once the
path has stayed the same for one more look (a copy still being written is not read half
done): parsed in a worker thread, it then replaces the old set at once. A path that cannot be
read keeps the set loaded before (logged), and is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import anyio

from ..core.advisories import AdvisoryIndex, build_index

log = logging.getLogger("pypi_proxy.policy")

POLL_INTERVAL = 5.0
Signature = tuple[tuple[str, int, int], ...]  # (path, size, mtime) of every file read


class AdvisoryLoadError(Exception):
    """An advisory path that cannot be read at start."""


class AdvisoryFiles:
    def __init__(self, paths: set[Path], interval: float = POLL_INTERVAL) -> None:
        self._paths = sorted(paths)
        self._interval = interval
        self._loaded: dict[Path, tuple[Signature, AdvisoryIndex]] = {}
        self._changing: dict[Path, Signature] = {}  # seen changed once, not yet taken
        self._generation = 0
        self._watcher: asyncio.Task[None] | None = None

    def index(self, path: Path | None) -> AdvisoryIndex:
        if path is None or path not in self._loaded:
            return AdvisoryIndex()
        return self._loaded[path][1]

    def counts(self) -> dict[str, int]:
        """Advisories loaded, by path."""
        return {str(path): index.count for path, (_, index) in self._loaded.items()}

    async def start(self) -> None:
        """Load every path (AdvisoryLoadError if one cannot be read), then watch them."""
        for path in self._paths:
            try:
                await anyio.to_thread.run_sync(self._load, path)
            except Exception as exc:  # unreadable, not a zip, a broken zip
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise AdvisoryLoadError(f"policy.advisories: {path}: {reason}") from None
        if self._paths:
            self._watcher = asyncio.create_task(self._watch(), name="advisory files")

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            for path in self._paths:
                try:
                    await anyio.to_thread.run_sync(self._reload_if_changed, path)
                except Exception as exc:  # a broken file must not end the watching
                    log.error("advisories %s: cannot be read, keeping those loaded: %s", path, exc)

    def _reload_if_changed(self, path: Path) -> None:
        signature = _signature(path)
        if signature == self._loaded[path][0]:
            self._changing.pop(path, None)
        elif self._changing.get(path) != signature:
            self._changing[path] = signature  # changed: taken if it stays so till next time
        else:
            self._load(path)
            self._changing.pop(path, None)

    def _load(self, path: Path) -> None:
        signature = _signature(path)
        self._generation += 1
        index, bad = build_index(_documents(path), self._generation)
        self._loaded[path] = (signature, index)
        log.info("advisories %s: %d loaded", path, index.count)
        if bad:
            log.warning("advisories %s: %d document(s) are not OSV advisories, skipped", path, bad)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.json") if p.is_file())
    return [path]


def _signature(path: Path) -> Signature:
    signature = []
    for file in _files(path):
        stat = file.stat()
        signature.append((str(file), stat.st_size, stat.st_mtime_ns))
    if not signature:
        os.stat(path)  # a missing path raises; an empty directory is no advisories
    return tuple(signature)


def _documents(path: Path) -> Iterator[bytes]:
    for file in _files(path):
        if file.suffix == ".zip":
            with zipfile.ZipFile(file) as archive:
                for member in archive.namelist():
                    if member.endswith(".json"):
                        yield archive.read(member)
        else:
            yield file.read_bytes()
