"""`pypi-proxy prefetch --lock`: the files lock files pin, found by their sha256 on the
proxy's pages and downloaded through it, with no resolution (see `core.lock_files`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from ..core.lock_files import BadLock, LockedFile, locked_files
from .arguments import UsageError
from .prefetch_downloads import answers, download_all, proxy_client
from .prefetch_plan import count, locked_refs

JSON = "application/vnd.pypi.simple.v1+json"


def locked(paths: Sequence[Path]) -> list[LockedFile]:
    """The files the lock files pin; a UsageError naming one that cannot be read."""
    try:
        return [f for path in paths for f in locked_files(path.name, path.read_text("utf-8"))]
    except (BadLock, OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--lock: {exc}") from None


async def prefetch_locked(
    base: str, index_url: str, pinned: Sequence[LockedFile], jobs: int
) -> int:
    """Every file the locks pin, found by hash on the proxy's pages, and the metadata of
    the wheels among them: no resolution."""
    async with proxy_client() as client:
        if not await answers(client, base):
            return 2
        projects = sorted({f.project for f in pinned})
        found = await asyncio.gather(*(_page(client, f"{index_url}{p}/") for p in projects))
        refs, missing = locked_refs(pinned, dict(zip(projects, found, strict=True)))
        limit = asyncio.Semaphore(jobs)
        outcomes = await download_all(client, base, {r.url: r for r in refs}, limit)
        wheels = [r.url for r in refs if r.filename.endswith(".whl")]
        await asyncio.gather(*(client.get(f"{url}.metadata") for url in wheels))
    failed = missing + [f"{url}: {o.error}" for url, o in outcomes.items() if o.error]
    print(f"{count(len(refs), 'locked file')} through the proxy, {count(len(failed), 'failure')}")
    for line in failed:
        print(f"  {line}", file=sys.stderr)
    return 1 if failed else 0


async def _page(client: httpx.AsyncClient, url: str) -> tuple[str, dict[str, Any] | None]:
    """A project's PEP 691 page on the proxy, by its URL (None: there is none)."""
    response = await client.get(url, headers={"Accept": JSON})
    if response.status_code != 200:
        return url, None
    page: dict[str, Any] = response.json()
    return str(response.url), page
