"""Downloads through the running proxy, for `pypi-proxy prefetch`: each file streamed (the
proxy caches it on the way), hashed and checked, with no byte kept here."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Mapping

import httpx

from ..core.ranges import digits
from .prefetch_plan import FileRef, Outcome, body_problem, count, same_origin
from .progress import Progress

# Per download: a file that stops moving for this long fails (the proxy itself gives up on a
# stalled upstream after its own stall timeout and may then resume from another mirror).
READ_TIMEOUT = 300.0
ATTEMPTS = 2  # a download cut short is tried once more: the proxy may have resumed meanwhile
CHUNK = 1024 * 1024
NOT_KEPT = (
    "passed through uncached: the proxy's cache has no room for it "
    "(see cache.max_size and cache.min_free)"
)


def proxy_client() -> httpx.AsyncClient:
    # No pool timeout: a download waiting for a connection has not failed.
    return httpx.AsyncClient(timeout=httpx.Timeout(READ_TIMEOUT, connect=10.0, pool=None))


async def answers(client: httpx.AsyncClient, base: str) -> bool:
    try:
        await client.get(f"{base}/-/health", timeout=10.0)
    except httpx.HTTPError as exc:
        print(
            f"pypi-proxy prefetch: no proxy answers at {base} ({exc or type(exc).__name__}); "
            "start it with `pypi-proxy serve`, or give its address with --url",
            file=sys.stderr,
        )
        return False
    return True


async def download_all(
    client: httpx.AsyncClient, base: str, files: Mapping[str, FileRef], limit: asyncio.Semaphore
) -> dict[str, Outcome]:
    """Every file through the proxy; a file from elsewhere is refused without a request."""
    outcomes = {
        url: Outcome(error=f"not served by the proxy at {base}: {url}")
        for url in files
        if not same_origin(url, base)
    }
    todo = [ref for url, ref in files.items() if url not in outcomes]
    if todo:
        print(f"downloading {count(len(todo), 'file')} through the proxy", file=sys.stderr)
    progress = Progress(len(todo), sys.stderr)
    got = await asyncio.gather(*(download(client, ref, limit, progress) for ref in todo))
    progress.close()
    outcomes.update(zip((ref.url for ref in todo), got, strict=True))
    return outcomes


async def download(
    client: httpx.AsyncClient, ref: FileRef, limit: asyncio.Semaphore, progress: Progress
) -> Outcome:
    async with limit:
        for _ in range(ATTEMPTS):
            outcome, again = await _download_once(client, ref, progress)
            if outcome.error is None or not again:
                break
        progress.finished(ref, outcome)
        return outcome


async def _download_once(
    client: httpx.AsyncClient, ref: FileRef, progress: Progress
) -> tuple[Outcome, bool]:
    """Stream the file through the proxy (which caches it on the way), hashing it and keeping
    no byte. Also says whether another attempt may go better."""
    digest = hashlib.sha256()
    received, size, cache = 0, None, ""
    try:
        async with client.stream("GET", ref.url) as response:
            if response.status_code != 200:
                return await _refused(response), response.status_code >= 500
            cache = response.headers.get("x-cache", "")
            if cache == "PASS":  # served, but not kept: tomorrow's clients would miss it
                return Outcome(error=NOT_KEPT), False
            size = digits(response.headers.get("content-length"))
            progress.begin(size)
            try:
                async for chunk in response.aiter_bytes(CHUNK):
                    digest.update(chunk)
                    received += len(chunk)
                    progress.advance(len(chunk))
            except httpx.HTTPError:
                progress.end(received, size, kept=False)
                raise
    except httpx.HTTPError as exc:
        return Outcome(error=f"broke off at byte {received}: {exc or type(exc).__name__}"), True
    error, again = body_problem(ref, digest.hexdigest(), received, size)
    progress.end(received, size, kept=error is None)
    if error is not None:
        return Outcome(error=error), again
    return Outcome(size=received, cached=cache == "HIT", verified=ref.sha256 is not None), False


async def _refused(response: httpx.Response) -> Outcome:
    body = (await response.aread())[:300].decode(errors="replace").strip()
    refusal = f"HTTP {response.status_code} from the proxy"
    return Outcome(error=refusal + (f": {body.splitlines()[0]}" if body else ""))
