"""`pypi-proxy check`: probe every configured mirror and rank the mirrors of each upstream.

For each mirror: whether it answers; its latency (time to the response headers of the sample
projects' pages); its throughput reading a sample file (the same file from every mirror of a
group); and its freshness (the newest version of each sample project, against the other
mirrors of its group). Best first: answering, then fresh, then fast (see `check_report`). The
exit status is 1 when some upstream has no mirror that answers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import httpx

from ..core.config import Config, Upstream
from ..core.model import FileLink, NormalizedName, ProjectPage, normalize
from ..core.parse import ParseError, parse_flat_listing, parse_project_page
from ..core.units import parse_duration, parse_size
from ..server.http_client import (
    NOT_FOUND,
    PAGE_ACCEPT,
    RequestFailed,
    build_http_client,
    mapped_errors,
    send,
)
from ..server.local_folders import local_mounts
from .arguments import load, value_type
from .check_report import GroupReport, Measurement, assess, newest_version, pick_sample, render

HELP = "probe every mirror (reachable, latency, throughput, freshness) and rank them"

# Common projects on every mirror of the official index, and torch for the PyTorch indexes
# (which lack most of the others; a sample that no mirror of a group has is skipped there).
DEFAULT_PROJECTS = ("pip", "setuptools", "packaging", "torch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    seconds = value_type(lambda text: parse_duration(text, positive=True))
    parser.add_argument(
        "--project",
        dest="projects",
        action="append",
        type=value_type(normalize),
        metavar="NAME",
        help=f"a sample project, repeatable (default: {', '.join(DEFAULT_PROJECTS)})",
    )
    parser.add_argument(
        "--sample-bytes",
        type=value_type(_sample_bytes),
        default=4 * 2**20,
        metavar="SIZE",
        help="bytes of the sample file read from each mirror (default: 4MiB)",
    )
    parser.add_argument(
        "--sample-time",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="longest read of the sample file from one mirror (default: 10s)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="longest wait for one mirror's sample pages, all of them (default: 30s)",
    )


def run(args: argparse.Namespace) -> int:
    config = load(args)
    projects = tuple(dict.fromkeys(args.projects or map(normalize, DEFAULT_PROJECTS)))
    options = Options(projects, args.sample_bytes, args.sample_time, args.timeout)
    mirrors = sum(len(u.mirrors) for u in config.upstreams)
    print(
        f"pypi-proxy: checking {mirrors} mirror(s) of {len(config.upstreams)} upstream(s)...",
        file=sys.stderr,
        flush=True,
    )
    dead = anyio.run(_check, config, options)
    if dead:
        print(f"pypi-proxy: no mirror answers for upstream(s): {', '.join(dead)}", file=sys.stderr)
        return 1
    return 0


@dataclass(frozen=True)
class Options:
    projects: tuple[NormalizedName, ...]
    sample_bytes: int
    sample_time: float
    timeout: float


@dataclass
class _Pages:
    """One mirror's answers for the sample pages."""

    pages: dict[NormalizedName, ProjectPage | None] = field(default_factory=dict)
    failed: dict[NormalizedName, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


async def _check(config: Config, options: Options) -> list[str]:
    """Print each group's table as it is done; return the groups no mirror answers for."""
    dead = []
    # As the proxy itself talks to upstreams, so what works here works there.
    async with build_http_client(config, mounts=local_mounts(config)) as http:
        probe = _Probe(http, config, options)
        probed = await probe.all_pages()
        for upstream in config.upstreams:
            pages = [(m, probed[upstream.name, m]) for m in upstream.mirrors]
            report = await probe.group(upstream, pages)
            print(render(report) + "\n", flush=True)
            if not report.reachable:
                dead.append(report.name)
    return dead


class _Probe:
    def __init__(self, http: httpx.AsyncClient, config: Config, options: Options) -> None:
        self.http, self.config, self.options = http, config, options

    async def all_pages(self) -> dict[tuple[str, str], _Pages]:
        """Every mirror's sample pages, by group and mirror, all mirrors at once, each on
        its own (no failover, no circuit breaker)."""
        probed: dict[tuple[str, str], _Pages] = {}

        async def probe(upstream: Upstream, mirror: str) -> None:
            probed[upstream.name, mirror] = await self._pages(mirror, mirror in upstream.flat)

        async with anyio.create_task_group() as tasks:
            for upstream in self.config.upstreams:
                for mirror in upstream.mirrors:
                    tasks.start_soon(probe, upstream, mirror)
        return probed

    async def group(self, upstream: Upstream, probed: list[tuple[str, _Pages]]) -> GroupReport:
        """The group's mirrors measured and ranked. The sample file is read from one mirror
        at a time, so that each mirror's throughput is its own."""
        options = self.options
        answered = [result.pages for _, result in probed if result.pages]
        sample = pick_sample(answered, options.projects, options.sample_bytes)
        measurements = []
        for mirror, result in probed:
            throughput, note = None, ""
            link = _listed(result.pages, sample)
            if result.pages and sample and link is None:
                note = "sample file not listed"
            elif link is not None:
                throughput, note = await self._throughput(link.url)
            measurements.append(_measurement(mirror, result, throughput, note))
        return assess(upstream.name, measurements, options.projects, sample)

    async def _pages(self, mirror: str, flat: bool) -> _Pages:
        """The sample projects' pages of one mirror, one after the other (so each latency is
        one request's, not a queue's), within `options.timeout` in all."""
        result, projects = _Pages(), self.options.projects
        with anyio.move_on_after(self.options.timeout):
            if flat:  # one listing page holds every project; without it there is nothing
                await self._listing(mirror, result)
            else:
                for project in projects:
                    try:
                        result.pages[project] = await self._project(mirror, project, result)
                    except (RequestFailed, ParseError) as exc:
                        result.failed[project] = _why(exc)
        for project in projects:
            if project not in result.pages and project not in result.failed:
                result.failed[project] = f"no page within {self.options.timeout:g} s"
        return result

    async def _listing(self, mirror: str, result: _Pages) -> None:
        projects = self.options.projects
        try:
            status, body, url = await self._page(mirror, "text/html", result.latencies)
            if status in NOT_FOUND:
                raise RequestFailed(f"HTTP {status} for its listing")
            # Parsed in a thread: a big page would stall the other mirrors' timings.
            listing = await anyio.to_thread.run_sync(parse_flat_listing, body, url)
        except (RequestFailed, ParseError) as exc:
            result.failed.update((p, _why(exc)) for p in projects)
        else:
            result.pages.update((p, listing.get(p)) for p in projects)

    async def _project(
        self, mirror: str, project: NormalizedName, result: _Pages
    ) -> ProjectPage | None:
        status, body, url = await self._page(f"{mirror}{project}/", PAGE_ACCEPT, result.latencies)
        if status in NOT_FOUND:
            return None  # the mirror says it has no such project
        return await anyio.to_thread.run_sync(parse_project_page, project, body, url)

    async def _page(self, url: str, accept: str, latencies: list[float]) -> tuple[int, bytes, str]:
        """A page's status, body and final URL: a 2xx, or a "no such page" (403, 404, 410;
        the PyTorch index says 403 for projects it lacks), which is an answer too. Else
        `RequestFailed`."""
        async with self._get(url, {"Accept": accept}) as (response, latency):
            status = response.status_code
            if not (200 <= status < 300 or status in NOT_FOUND):
                raise RequestFailed(f"HTTP {status}")
            latencies.append(latency)
            body = b"" if status in NOT_FOUND else await response.aread()
            return status, body, str(response.url)

    async def _throughput(self, url: str) -> tuple[float | None, str]:
        """Bytes per second reading up to `sample_bytes` of a file for up to `sample_time`,
        counted from the response headers (the latency is measured apart); or why not."""
        options, got, elapsed = self.options, 0, 0.0
        try:
            # identity: bytes as stored, counted as they come over the wire.
            async with self._get(url, {"Accept-Encoding": "identity"}) as (response, _):
                if response.status_code != 200:
                    return None, f"sample file: HTTP {response.status_code}"
                started = time.perf_counter()
                with anyio.move_on_after(options.sample_time):
                    async for chunk in response.aiter_raw():
                        got += len(chunk)
                        if got >= options.sample_bytes:
                            break
                elapsed = time.perf_counter() - started
        except RequestFailed as exc:
            return None, f"sample file: {exc}"
        if not got:
            return None, f"sample file: no bytes within {options.sample_time:g} s"
        return got / max(elapsed, 1e-6), ""

    @asynccontextmanager
    async def _get(
        self, url: str, headers: dict[str, str]
    ) -> AsyncIterator[tuple[httpx.Response, float]]:
        """A streamed response and its latency; what goes wrong is `RequestFailed`."""
        started = time.perf_counter()
        response = await send(self.http, url, headers, self.config.first_byte_timeout)
        try:
            with mapped_errors():
                yield response, time.perf_counter() - started
        finally:
            await response.aclose()


def _measurement(mirror: str, result: _Pages, throughput: float | None, note: str) -> Measurement:
    return Measurement(
        mirror=mirror,
        reachable=bool(result.pages),
        error=next(iter(result.failed.values()), ""),
        latency=statistics.median(result.latencies) if result.latencies else None,
        throughput=throughput,
        versions={p: newest_version(page) for p, page in result.pages.items()},
        failed=result.failed,
        note=note,
    )


def _listed(
    pages: Mapping[NormalizedName, ProjectPage | None], filename: str | None
) -> FileLink | None:
    """The mirror's own link to the file (mirrors lay their files out differently)."""
    for page in pages.values():
        link = page.file(filename) if page and filename else None
        if link is not None:
            return link
    return None


def _why(exc: Exception) -> str:
    return f"unparseable: {exc}" if isinstance(exc, ParseError) else str(exc)


def _sample_bytes(text: str) -> int:
    size = parse_size(text)  # as in the config: 512KiB, 4MiB, 10MB
    if size < 1:
        raise ValueError("expected at least 1 byte")
    return size
