"""`pypi-proxy prefetch`: resolve requirements with pip for each target machine (every platform
times every Python version given) through the running proxy, then download every file they
need through it, so the proxy has them all cached. Exits 1, naming each failure, unless every
target resolved and every file arrived with its sha256 verified.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..core.config import Config, ConfigError
from ..core.lock_files import BadLock, LockedFile, locked_files
from ..core.ranges import digits
from .addresses import local_url
from .arguments import UsageError, load, value_type
from .prefetch_plan import (
    FileRef,
    Outcome,
    Resolution,
    Target,
    body_problem,
    count,
    distinct_files,
    error_tail,
    failure_lines,
    files_in_report,
    locked_refs,
    pip_command,
    same_origin,
    summary_table,
    targets,
)
from .progress import Progress

HELP = "resolve requirements for target machines and download them into the proxy's cache"

# Per download: a file that stops moving for this long fails (the proxy itself gives up on a
# stalled upstream after its own stall timeout and may then resume from another mirror).
READ_TIMEOUT = 300.0
ATTEMPTS = 2  # a download cut short is tried once more: the proxy may have resumed meanwhile
CHUNK = 1024 * 1024
JSON = "application/vnd.pypi.simple.v1+json"
NOT_KEPT = (
    "passed through uncached: the proxy's cache has no room for it "
    "(see cache.max_size and cache.min_free)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "requirements", nargs="*", metavar="REQUIREMENT", help="requirement specifiers"
    )
    parser.add_argument(
        "-r",
        "--requirement",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a requirements file (repeatable)",
    )
    parser.add_argument(
        "--lock",
        action="append",
        default=[],
        type=Path,
        metavar="LOCKFILE",
        help="a uv.lock, pylock.toml, poetry.lock or pdm.lock: its files, by hash, with no "
        "resolution (repeatable)",
    )
    parser.add_argument("--index", help="the index (profile) to resolve in (default: the default)")
    parser.add_argument(
        "--python-version",
        action="append",
        default=[],
        type=value_type(_python_version),
        metavar="X.Y",
        help="a target Python version (repeatable; default: this interpreter's)",
    )
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="TAG",
        help="a target platform tag such as win_amd64, manylinux2014_x86_64, "
        "macosx_11_0_arm64 (repeatable; default: this machine)",
    )
    parser.add_argument(
        "--url", help="the running proxy's base URL (default: http://127.0.0.1:<listen.port>)"
    )
    parser.add_argument(
        "--jobs", type=int, default=4, help="resolutions and downloads run at a time (default 4)"
    )


def run(args: argparse.Namespace) -> int:
    config = load(args)
    problem = _usage_problem(args, config)
    if problem is not None:
        print(f"pypi-proxy prefetch: {problem}", file=sys.stderr)
        return 2
    base = (args.url or local_url(config)).rstrip("/")
    index_url = f"{base}/{args.index}/simple/" if args.index else f"{base}/simple/"
    pip_inputs = [item for path in args.requirement for item in ("-r", str(path))]
    pip_inputs += args.requirements
    wanted = targets(args.platform, args.python_version)
    try:
        if args.lock:
            locked = _locked(args.lock)
            return asyncio.run(_prefetch_locked(base, index_url, locked, args.jobs))
        return asyncio.run(_prefetch(base, index_url, pip_inputs, wanted, args.jobs))
    except KeyboardInterrupt:
        print("\npypi-proxy prefetch: interrupted", file=sys.stderr)
        return 130


def _python_version(text: str) -> str:
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
        raise ValueError(f"expected a version such as 3.11, got {text!r}")
    return text


def _usage_problem(args: argparse.Namespace, config: Config) -> str | None:
    try:
        config.index(args.index)
    except ConfigError as exc:
        return f"--index: {exc}"
    problem = _inputs_problem(args)
    if problem is not None:
        return problem
    if args.jobs < 1:
        return "--jobs: expected 1 or more"
    if args.url is not None:
        parts = urlsplit(args.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"--url: expected a base URL such as http://10.0.0.5:3141, got {args.url!r}"
    if importlib.util.find_spec("pip") is None:
        return f"needs pip in the Python that runs it ({sys.executable}): python -m ensurepip"
    return None


def _inputs_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with what is to be prefetched, if anything."""
    if not args.requirement and not args.requirements and not args.lock:
        return "nothing to prefetch: give requirements files (-r FILE), requirements or --lock"
    if args.lock and (args.requirement or args.requirements):
        return "--lock: give lock files alone (they pin everything already)"
    for option, path in [
        *(("--lock", p) for p in args.lock),
        *(("-r", p) for p in args.requirement),
    ]:
        if not path.is_file():
            return f"{option} {path}: no such file"
    return None


async def _prefetch(
    base: str, index_url: str, inputs: Sequence[str], wanted: Sequence[Target], jobs: int
) -> int:
    # No pool timeout: a download waiting for a connection has not failed.
    timeout = httpx.Timeout(READ_TIMEOUT, connect=10.0, pool=None)
    async with httpx.AsyncClient(timeout=timeout) as client:
        if not await _answers(client, base):
            return 2
        print(
            f"resolving for {count(len(wanted), 'target')} with pip, from {index_url}",
            file=sys.stderr,
        )
        limit = asyncio.Semaphore(jobs)
        resolutions = await asyncio.gather(*(_resolve(t, index_url, inputs, limit) for t in wanted))
        outcomes = await _download_all(client, base, distinct_files(resolutions), limit)
    return _report(resolutions, outcomes)


def _locked(paths: Sequence[Path]) -> list[LockedFile]:
    try:
        return [f for path in paths for f in locked_files(path.name, path.read_text("utf-8"))]
    except (BadLock, OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--lock: {exc}") from None


async def _prefetch_locked(
    base: str, index_url: str, locked: Sequence[LockedFile], jobs: int
) -> int:
    """Every file the locks pin, found by hash on the proxy's pages, and the metadata of
    the wheels among them: no resolution."""
    timeout = httpx.Timeout(READ_TIMEOUT, connect=10.0, pool=None)
    async with httpx.AsyncClient(timeout=timeout) as client:
        if not await _answers(client, base):
            return 2
        projects = sorted({f.project for f in locked})
        pages = dict(zip(projects, await asyncio.gather(*(
            _page(client, f"{index_url}{p}/") for p in projects)), strict=True))  # fmt: skip
        refs, missing = locked_refs(locked, pages)
        limit = asyncio.Semaphore(jobs)
        outcomes = await _download_all(client, base, {r.url: r for r in refs}, limit)
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


async def _answers(client: httpx.AsyncClient, base: str) -> bool:
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


async def _download_all(
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
    got = await asyncio.gather(*(_download(client, ref, limit, progress) for ref in todo))
    progress.close()
    outcomes.update(zip((ref.url for ref in todo), got, strict=True))
    return outcomes


def _report(resolutions: Sequence[Resolution], outcomes: Mapping[str, Outcome]) -> int:
    print(summary_table(resolutions, outcomes))
    problems = failure_lines(resolutions, outcomes)
    if not problems:
        return 0
    failed = sum(r.error is not None for r in resolutions)
    failed += sum(o.error is not None for o in outcomes.values())
    print(f"\npypi-proxy prefetch: {failed} failed:", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    return 1


def pip_environment() -> dict[str, str]:
    """This environment without the user's pip configuration (which could add indexes,
    find-links or constraints that are not the proxy's)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


async def _resolve(
    target: Target, index_url: str, inputs: Sequence[str], limit: asyncio.Semaphore
) -> Resolution:
    async with limit:
        with tempfile.TemporaryDirectory(prefix="pypi-proxy-prefetch-") as tmp:
            report = Path(tmp) / "report.json"
            returncode, stderr = await _run_pip(pip_command(target, index_url, report, inputs))
            if returncode != 0:
                print(f"{target.label}: pip failed", file=sys.stderr)
                return Resolution(target, error=error_tail(stderr))
            try:
                data = json.loads(report.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                return Resolution(target, error=f"pip wrote no readable report: {exc}")
    packages, files = files_in_report(data)
    print(f"{target.label}: {count(packages, 'package')}", file=sys.stderr)
    return Resolution(target, packages, tuple(files))


async def _run_pip(command: list[str]) -> tuple[int, str]:
    """pip's exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=pip_environment(),
    )
    try:
        _, stderr = await process.communicate()
    finally:
        if process.returncode is None:  # interrupted: leave no pip behind
            process.kill()
            await process.wait()
    return await process.wait(), stderr.decode(errors="replace")


async def _download(
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
