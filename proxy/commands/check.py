"""`pypi-proxy check`: probe every configured mirror and rank the mirrors of each upstream.

For each mirror: whether it answers; its latency (time to the response headers of the sample
projects' pages); its throughput reading a sample file (the same file from every mirror of a
group); and its freshness (the newest version of each sample project, against the other
mirrors of its group). Best first: answering, then fresh, then fast. The exit status is 1
when some upstream has no mirror that answers.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import httpx
from packaging.version import Version

from ..core.config import Config, ConfigError, Upstream, parse_duration, parse_size
from ..core.model import (
    FileLink,
    InvalidName,
    NormalizedName,
    ProjectPage,
    hide_passwords,
    name_and_version,
    normalize,
)
from ..core.parse import ParseError, parse_flat_listing, parse_project_page
from ..core.units import size as human_size
from ..server.upstream import NOT_FOUND, PAGE_ACCEPT, user_agent

HELP = "probe every mirror (reachable, latency, throughput, freshness) and rank them"

# Common projects on every mirror of the official index, and torch for the PyTorch indexes
# (which lack most of the others; a sample that no mirror of a group has is skipped there).
DEFAULT_PROJECTS = ("pip", "setuptools", "packaging", "torch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project",
        dest="projects",
        action="append",
        type=_project,
        metavar="NAME",
        help=f"a sample project, repeatable (default: {', '.join(DEFAULT_PROJECTS)})",
    )
    parser.add_argument(
        "--sample-bytes",
        type=_sample_bytes,
        default=4 * 2**20,
        metavar="SIZE",
        help="bytes of the sample file read from each mirror (default: 4MiB)",
    )
    parser.add_argument(
        "--sample-time",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="longest read of the sample file from one mirror (default: 10s)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="longest wait for one mirror's sample pages, all of them (default: 30s)",
    )


def run(args: argparse.Namespace, config: Config) -> int:
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


# -- what was measured, and what it means (pure) ------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One mirror, as probed. `versions` holds the newest version the mirror lists of each
    sample project whose page it answered for (None: it answered that it has no such project);
    `failed` the reason for each page it did not answer. `note` is about the sample file."""

    mirror: str
    reachable: bool
    error: str = ""  # why it is not reachable
    latency: float | None = None  # seconds to the response headers (median of the pages)
    throughput: float | None = None  # bytes per second reading the sample file
    versions: Mapping[NormalizedName, Version | None] = field(default_factory=dict)
    failed: Mapping[NormalizedName, str] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Ranked:
    rank: int
    measurement: Measurement
    behind: tuple[str, ...]  # e.g. "pip 24.0 < 24.2", "torch missing", "pip: HTTP 502"


@dataclass(frozen=True)
class GroupReport:
    name: str
    projects: tuple[NormalizedName, ...]
    newest: Mapping[NormalizedName, Version]  # the newest version any mirror of the group lists
    rows: tuple[Ranked, ...]  # best first
    sample: str | None  # the filename read for throughput

    @property
    def reachable(self) -> bool:
        return any(r.measurement.reachable for r in self.rows)


def newest_version(page: ProjectPage | None) -> Version | None:
    """The highest version among the page's files of that project (yanked ones too: every
    mirror copies the yank, so they compare alike)."""
    if page is None:
        return None
    versions = [
        parsed[1]
        for link in page.files
        if (parsed := name_and_version(link.filename)) is not None and parsed[0] == page.name
    ]
    return max(versions, default=None)


def pick_sample(
    listings: Sequence[Mapping[NormalizedName, ProjectPage | None]],
    projects: Sequence[NormalizedName],
    enough: int,
) -> str | None:
    """The file to measure throughput on: one that the most mirrors list (the same bytes from
    each, so the numbers compare), at least `enough` bytes long when sizes are known (a tiny
    file measures the round trip, not the throughput), of the earliest sample project, of its
    newest version, a wheel rather than an sdist."""
    found: dict[str, tuple[int, int, int, Version, bool]] = {}
    for pages in listings:
        for index, project in enumerate(projects):
            page = pages.get(project)
            for link in page.files if page else ():
                parsed = name_and_version(link.filename)
                if parsed is None or parsed[0] != project:
                    continue
                count, size, *_ = found.get(link.filename, (0, 0))
                size = max(size, min(link.size or 0, enough))
                wheel = link.filename.endswith(".whl")
                found[link.filename] = (count + 1, size, -index, parsed[1], wheel)
    return max(found, key=lambda filename: (found[filename], filename), default=None)


def assess(
    name: str,
    measurements: Sequence[Measurement],
    projects: tuple[NormalizedName, ...],
    sample: str | None = None,
) -> GroupReport:
    """Compare the mirrors of one group and rank them: reachable first; then fresh before
    behind (a stale mirror is worse than a slow one: pip cannot find new releases there at
    all); then higher throughput; then lower latency; then config order."""
    found: dict[NormalizedName, Version] = {}
    for m in measurements:
        for project, version in m.versions.items() if m.reachable else ():
            if version is not None and (project not in found or version > found[project]):
                found[project] = version
    newest = {p: found[p] for p in projects if p in found}  # in the order asked
    lags = [_behind(m, newest) if m.reachable else () for m in measurements]

    def key(i: int) -> tuple[bool, int, float, float]:
        m = measurements[i]
        speed = -m.throughput if m.throughput is not None else float("inf")
        latency = m.latency if m.latency is not None else float("inf")
        return (not m.reachable, len(lags[i]), speed, latency)

    order = sorted(range(len(measurements)), key=key)  # stable: ties keep config order
    rows = tuple(Ranked(n, measurements[i], lags[i]) for n, i in enumerate(order, start=1))
    return GroupReport(name, projects, newest, rows, sample)


def _behind(m: Measurement, newest: Mapping[NormalizedName, Version]) -> tuple[str, ...]:
    lags = []
    for project, top in newest.items():
        if project in m.failed:
            lags.append(f"{project}: {m.failed[project]}")
        elif (version := m.versions.get(project)) is None:
            lags.append(f"{project} missing")
        elif version < top:
            lags.append(f"{project} {version} < {top}")
    return tuple(lags)


COLUMNS = ("rank", "mirror", "reachable", "latency", "throughput", "freshness", "note")
_RIGHT = {"rank", "latency", "throughput"}


def render(report: GroupReport) -> str:
    """The group's table, plain ASCII (a Windows console shows it as it is)."""
    line = f"{report.name}: {len(report.rows)} mirror(s)"
    if not report.reachable:
        line += "; none answers"
    else:
        known = ", ".join(f"{p} {v}" for p, v in report.newest.items()) or "none"
        line += f"; newest of the samples: {known}"
        absent = [p for p in report.projects if p not in report.newest]
        line += f"; on no mirror: {', '.join(absent)}" if absent else ""
        line += f"; throughput on {report.sample}" if report.sample else "; no sample file"
    # A table pasted into a ticket must not carry a private mirror's password.
    rows = [[hide_passwords(cell) for cell in _cells(r, report.newest)] for r in report.rows]
    table = [list(COLUMNS), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = [line] + [
        "  ".join(
            cell.rjust(width) if column in _RIGHT else cell.ljust(width)
            for column, cell, width in zip(COLUMNS, row, widths, strict=True)
        ).rstrip()
        for row in table
    ]
    # Error texts come from the operating system, which may speak another language.
    return "\n".join(lines).encode("ascii", "replace").decode("ascii")


def _cells(row: Ranked, newest: Mapping[NormalizedName, Version]) -> list[str]:
    m = row.measurement
    if not m.reachable:
        return [str(row.rank), m.mirror, "no", "-", "-", "-", m.error]
    freshness = "-" if not newest else f"behind {len(row.behind)}/{len(newest)}"
    if newest and not row.behind:
        freshness = "fresh"
    # Pages that failed for a project no mirror has are not "behind", but still worth a word.
    notes = [*row.behind] + [f"{p}: {why}" for p, why in m.failed.items() if p not in newest]
    notes += [m.note] if m.note else []
    latency = "-" if m.latency is None else f"{m.latency * 1000:.0f} ms"
    return [
        str(row.rank),
        m.mirror,
        "yes",
        latency,
        _rate(m.throughput),
        freshness,
        "; ".join(notes),
    ]


def _rate(bytes_per_second: float | None) -> str:
    return "-" if bytes_per_second is None else f"{human_size(bytes_per_second)}/s"


# -- probing (I/O) ------------------------------------------------------------------------------


class _Failed(Exception):
    """A request without a usable answer; the message is the short reason."""


@dataclass
class _Pages:
    """One mirror's answers for the sample pages."""

    pages: dict[NormalizedName, ProjectPage | None] = field(default_factory=dict)
    failed: dict[NormalizedName, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


async def _check(config: Config, options: Options) -> list[str]:
    """Print each group's table as it is done; return the groups no mirror answers for."""
    dead = []
    async for report in _measure(config, options):
        print(render(report) + "\n", flush=True)
        if not report.reachable:
            dead.append(report.name)
    return dead


async def _measure(config: Config, options: Options) -> AsyncIterator[GroupReport]:
    async with _client(config) as http:
        # Pages: every mirror at once, each on its own (no failover, no circuit breaker).
        probed: dict[tuple[str, str], _Pages] = {}

        async def probe(upstream: Upstream, mirror: str) -> None:
            probed[upstream.name, mirror] = await _probe_pages(
                http, config, mirror, mirror in upstream.flat, options
            )

        async with anyio.create_task_group() as tasks:
            for upstream in config.upstreams:
                for mirror in upstream.mirrors:
                    tasks.start_soon(probe, upstream, mirror)

        # Files: one mirror at a time, so that no download shares the line with another
        # and each mirror's throughput is its own.
        for upstream in config.upstreams:
            results = [(mirror, probed[upstream.name, mirror]) for mirror in upstream.mirrors]
            answered = [r.pages for _, r in results if r.pages]
            sample = pick_sample(answered, options.projects, options.sample_bytes)
            measurements = []
            for mirror, result in results:
                throughput, note = None, ""
                link = _listed(result.pages, sample)
                if result.pages and sample and link is None:
                    note = "sample file not listed"
                elif link is not None:
                    throughput, note = await _throughput(http, config, link.url, options)
                measurements.append(
                    Measurement(
                        mirror=mirror,
                        reachable=bool(result.pages),
                        error=next(iter(result.failed.values()), ""),
                        latency=statistics.median(result.latencies) if result.latencies else None,
                        throughput=throughput,
                        versions={p: newest_version(page) for p, page in result.pages.items()},
                        failed=result.failed,
                        note=note,
                    )
                )
            yield assess(upstream.name, measurements, options.projects, sample)


@asynccontextmanager
async def _client(config: Config) -> AsyncIterator[httpx.AsyncClient]:
    # As the proxy itself talks to upstreams (see upstream.py), so what works here works there.
    context = ssl.create_default_context(cafile=str(config.ca_bundle) if config.ca_bundle else None)
    timeout = httpx.Timeout(
        connect=config.connect_timeout,
        read=config.stall_timeout,  # per read: a body that stops moving
        write=config.stall_timeout,
        pool=config.connect_timeout,
    )
    async with httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=True,
        headers={"User-Agent": user_agent()},
        verify=context,
    ) as http:
        yield http


async def _probe_pages(
    http: httpx.AsyncClient, config: Config, mirror: str, flat: bool, options: Options
) -> _Pages:
    """The sample projects' pages of one mirror, one after the other (so each latency is one
    request's, not a queue's), within `options.timeout` in all."""
    result = _Pages()
    with anyio.move_on_after(options.timeout):
        if flat:  # one listing page holds every project; without it there is nothing
            try:
                status, body, url = await _page(http, mirror, "text/html", config, result.latencies)
                if status in NOT_FOUND:
                    raise _Failed(f"HTTP {status} for its listing")
                # Parsed in a thread: a big page would stall the other mirrors' timings.
                listing = await anyio.to_thread.run_sync(parse_flat_listing, body, url)
            except (_Failed, ParseError) as exc:
                result.failed.update((p, _why(exc)) for p in options.projects)
            else:
                result.pages.update((p, listing.get(p)) for p in options.projects)
        else:
            for project in options.projects:
                try:
                    status, body, url = await _page(
                        http, f"{mirror}{project}/", PAGE_ACCEPT, config, result.latencies
                    )
                    page = None  # the mirror says it has no such project
                    if status not in NOT_FOUND:
                        page = await anyio.to_thread.run_sync(
                            parse_project_page, project, body, url
                        )
                except (_Failed, ParseError) as exc:
                    result.failed[project] = _why(exc)
                else:
                    result.pages[project] = page
    for project in options.projects:
        if project not in result.pages and project not in result.failed:
            result.failed[project] = f"no page within {options.timeout:g} s"
    return result


async def _page(
    http: httpx.AsyncClient, url: str, accept: str, config: Config, latencies: list[float]
) -> tuple[int, bytes, str]:
    """A page's status, body and final URL: a 2xx, or a "no such page" (403, 404, 410; the
    PyTorch index says 403 for projects it lacks), which is an answer too. Else `_Failed`."""
    async with _get(http, config, url, {"Accept": accept}) as (response, latency):
        status = response.status_code
        if not (200 <= status < 300 or status in NOT_FOUND):
            raise _Failed(f"HTTP {status}")
        latencies.append(latency)
        body = b"" if status in NOT_FOUND else await response.aread()
        return status, body, str(response.url)


async def _throughput(
    http: httpx.AsyncClient, config: Config, url: str, options: Options
) -> tuple[float | None, str]:
    """Bytes per second reading up to `sample_bytes` of a file for up to `sample_time`,
    counted from the response headers (the latency is measured apart); or why not."""
    got, elapsed = 0, 0.0
    try:
        # identity: bytes as stored, counted as they come over the wire.
        async with _get(http, config, url, {"Accept-Encoding": "identity"}) as (response, _):
            if response.status_code != 200:
                return None, f"sample file: HTTP {response.status_code}"
            started = time.perf_counter()
            with anyio.move_on_after(options.sample_time):
                async for chunk in response.aiter_raw():
                    got += len(chunk)
                    if got >= options.sample_bytes:
                        break
            elapsed = time.perf_counter() - started
    except _Failed as exc:
        return None, f"sample file: {exc}"
    if not got:
        return None, f"sample file: no bytes within {options.sample_time:g} s"
    return got / max(elapsed, 1e-6), ""


@asynccontextmanager
async def _get(
    http: httpx.AsyncClient, config: Config, url: str, headers: dict[str, str]
) -> AsyncIterator[tuple[httpx.Response, float]]:
    """A streamed response and its latency; httpx errors become `_Failed` here."""
    started = time.perf_counter()
    try:
        # httpx has no time-to-first-byte timeout: bound sending the request and the headers.
        with anyio.fail_after(config.first_byte_timeout):
            response = await http.send(http.build_request("GET", url, headers=headers), stream=True)
    except TimeoutError:
        raise _Failed(f"no response within {config.first_byte_timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: a redirect to garbage
        raise _Failed(_describe(exc)) from None
    try:
        yield response, time.perf_counter() - started
    except httpx.HTTPError as exc:
        raise _Failed(_describe(exc)) from None
    finally:
        await response.aclose()


def _listed(
    pages: Mapping[NormalizedName, ProjectPage | None], filename: str | None
) -> FileLink | None:
    """The mirror's own link to the file (mirrors lay their files out differently)."""
    for page in pages.values():
        link = page.file(filename) if page and filename else None
        if link is not None:
            return link
    return None


def _describe(exc: Exception) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _why(exc: Exception) -> str:
    return f"unparseable: {exc}" if isinstance(exc, ParseError) else str(exc)


# -- arguments ----------------------------------------------------------------------------------


def _project(text: str) -> NormalizedName:
    try:
        return normalize(text)
    except InvalidName as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sample_bytes(text: str) -> int:
    try:
        size = parse_size(text, "--sample-bytes")  # as in the config: 512KiB, 4MiB, 10MB
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if size < 1:
        raise argparse.ArgumentTypeError("--sample-bytes: expected at least 1 byte")
    return size


def _seconds(text: str) -> float:
    try:
        return parse_duration(text, "a time", positive=True)  # as in the config: 10, 30s, 1m
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
