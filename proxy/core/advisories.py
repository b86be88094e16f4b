"""OSV advisories for the PyPI ecosystem: which versions of a project they name, and how bad.

An advisory is a JSON document (`id`, `affected[].package`, `affected[].versions`,
`affected[].ranges`, `severity`, `database_specific.severity`), as the OSV export holds them.
Malicious packages have `MAL-` ids. Parsing is pure; reading files is `server.advisory_files`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from cvss import CVSS2, CVSS3, CVSS4
from packaging.version import InvalidVersion, Version

from .model import InvalidName, NormalizedName, normalize

Severity = Literal["low", "moderate", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "moderate", "high", "critical")
# How other databases spell GitHub's levels.
_SEVERITY_NAMES: dict[str, Severity] = {
    "low": "low", "moderate": "moderate", "medium": "moderate", "high": "high",
    "critical": "critical",
}  # fmt: skip


class AdvisoryError(ValueError):
    """A document that is not an OSV advisory."""


@dataclass(frozen=True)
class Advisory:
    id: str
    severity: Severity | None  # None: not stated, or not readable
    aliases: frozenset[str] = frozenset()  # the same advisory in other databases

    @property
    def malware(self) -> bool:
        return self.id.startswith("MAL-")

    def at_least(self, level: Severity) -> bool:
        rank = SEVERITIES.index
        return self.severity is not None and rank(self.severity) >= rank(level)


# ("introduced" | "fixed" | "last_affected" | "limit", version); None: before every version
# (OSV's `introduced: "0"`, which must cover `0a1` and `0.0.dev1` too).
Event = tuple[str, Version | None]


@dataclass(frozen=True)
class Affected:
    """The versions of one project one advisory names: listed, or in `ECOSYSTEM` ranges."""

    advisory: Advisory
    versions: frozenset[Version]
    ranges: tuple[tuple[Event, ...], ...] = ()

    def covers(self, version: Version) -> bool:
        return version in self.versions or any(_in_range(version, r) for r in self.ranges)


def _in_range(version: Version, events: tuple[Event, ...]) -> bool:
    """OSV's evaluation of one range: events in version order, each opening or closing it."""
    affected = False
    for kind, at in events:
        if at is None:
            affected = kind == "introduced"
        elif kind == "introduced" and version >= at:
            affected = True
        elif (kind == "fixed" and version >= at) or (kind == "last_affected" and version > at):
            affected = False
        elif kind == "limit" and version >= at:
            return False
    return affected


@dataclass
class AdvisoryIndex:
    """Advisories by project; `generation` changes whenever the set was loaded anew."""

    by_project: dict[NormalizedName, list[Affected]] = field(default_factory=dict)
    generation: int = 0
    count: int = 0

    def affecting(self, name: NormalizedName, version: Version | None) -> list[Advisory]:
        """The advisories naming this version of the project; for a file whose version
        cannot be read (None), every advisory of the project: unknown is not safe."""
        found = self.by_project.get(name, ())
        return [a.advisory for a in found if version is None or a.covers(version)]


def build_index(documents: Iterable[bytes], generation: int = 0) -> tuple[AdvisoryIndex, int]:
    """The index of every PyPI advisory among the documents (JSON: an advisory, or a list of
    them), and how many were not advisories at all (skipped: one broken file must not drop
    the others)."""
    index, bad = AdvisoryIndex(generation=generation), 0
    for document in documents:
        try:
            data = json.loads(document)
        except (ValueError, RecursionError):  # not JSON, or nested past reading
            bad += 1
            continue
        for item in data if isinstance(data, list) else [data]:
            try:
                entries = parse_advisory(item)
            except AdvisoryError:
                bad += 1
                continue
            index.count += bool(entries)
            for name, affected in entries:
                index.by_project.setdefault(name, []).append(affected)
    return index, bad


def parse_advisory(data: Any) -> list[tuple[NormalizedName, Affected]]:
    """The PyPI projects one advisory names, with what it says of each (none if withdrawn)."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise AdvisoryError("not an OSV advisory: no id")
    if data.get("withdrawn"):
        return []
    aliases = frozenset(a for a in _list(data.get("aliases")) if isinstance(a, str))
    advisory = Advisory(data["id"], _severity(data), aliases)
    found = []
    for item in _list(data.get("affected")):
        package = item.get("package") if isinstance(item, dict) else None
        if not isinstance(package, dict) or package.get("ecosystem") != "PyPI":
            continue
        try:
            name = normalize(str(package.get("name", "")))
        except InvalidName:
            continue
        versions = frozenset(v for v in map(_version, _list(item.get("versions"))) if v)
        ranges = tuple(_events(r) for r in _list(item.get("ranges")) if _is_ecosystem_range(r))
        found.append((name, Affected(advisory, versions, ranges)))
    return found


def _is_ecosystem_range(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "ECOSYSTEM"


def _events(spec: dict[str, Any]) -> tuple[Event, ...]:
    events: list[Event] = []
    for event in _list(spec.get("events")):
        if not isinstance(event, dict) or len(event) != 1:
            continue
        ((kind, raw),) = event.items()
        if kind == "introduced" and raw == "0":
            events.append((kind, None))
        elif (at := _version(raw)) is not None and kind in _EVENTS:
            events.append((kind, at))
    # In version order ("0" first); at one version an introduction comes before what closes
    # the range.
    return tuple(
        sorted(events, key=lambda e: (e[1] is not None, e[1] or _ZERO, e[0] != "introduced"))
    )


_EVENTS = ("introduced", "fixed", "last_affected", "limit")
_ZERO = Version("0")


def _severity(data: dict[str, Any]) -> Severity | None:
    specific = data.get("database_specific")
    if isinstance(specific, dict) and isinstance(specific.get("severity"), str):
        named = _SEVERITY_NAMES.get(specific["severity"].lower())
        if named is not None:
            return named
    scores = [_cvss_score(s) for s in _list(data.get("severity")) if isinstance(s, dict)]
    known = [s for s in scores if s is not None]
    return _level(max(known)) if known else None


def _cvss_score(entry: dict[str, Any]) -> float | None:
    """The base score of a CVSS vector (v2, v3 or v4), or None if it cannot be read."""
    kinds = {"CVSS_V2": CVSS2, "CVSS_V3": CVSS3, "CVSS_V4": CVSS4}
    kind, vector = kinds.get(str(entry.get("type"))), entry.get("score")
    if kind is None or not isinstance(vector, str):
        return None
    try:
        parsed = kind(vector)
    except Exception:
        return None
    score = parsed.base_score if isinstance(parsed, CVSS4) else parsed.scores()[0]
    return float(score)


def _level(score: float) -> Severity | None:
    """CVSS's qualitative rating of a base score (0: none)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "moderate"
    return "low" if score > 0 else None


def _version(value: Any) -> Version | None:
    try:
        return Version(str(value))
    except InvalidVersion:
        return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
