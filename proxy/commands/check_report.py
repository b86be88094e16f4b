"""What `pypi-proxy check` makes of its measurements (pure): how the mirrors of a group compare,
which file to measure throughput on, and the table that shows it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from packaging.version import Version

from ..core.model import NormalizedName, ProjectPage, name_and_version
from ..core.redact import hide_passwords
from ..core.units import human_size
from .tables import table


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
_RIGHT = {0, 3, 4}  # rank, latency, throughput


def render(report: GroupReport) -> str:
    """The group's table, with a line saying what it was measured against."""
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
    lines = table([COLUMNS, *rows], right=_RIGHT)
    return "\n".join([line.encode("ascii", "replace").decode("ascii"), *lines])


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
