"""The index in the shape of PEP 691: what every upstream page is parsed into and rendered from,
and the few values that travel with it through the proxy."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, NewType

from packaging.tags import Tag
from packaging.utils import (
    BuildTag,
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.utils import NormalizedName as CanonicalName
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from .config import Upstream

NormalizedName = NewType("NormalizedName", str)

# A normalized name is lowercase runs of letters and digits joined by single hyphens; anything
# else a client sends is either a redirect to this form or not a project at all.
_NORMALIZED = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_VALID_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


class InvalidName(ValueError):
    """A string that no project can be called."""


def normalize(name: str) -> NormalizedName:
    """PEP 503 normalization, refusing strings that are not project names at all."""
    if len(name) > 200 or not _VALID_NAME.fullmatch(name):
        raise InvalidName(f"not a valid project name: {name!r}")
    normalized = canonicalize_name(name)
    if not _NORMALIZED.fullmatch(normalized):
        raise InvalidName(f"not a valid project name: {name!r}")
    return NormalizedName(normalized)


# PEP 825 (draft; PyTorch publishes them under /whl/variant/): a variant wheel's filename has
# one more part after the platform tag, its label. packaging cannot parse those yet.
_VARIANT_LABEL = re.compile(r"[0-9a-z_.]+")
# Beside a version's variant wheels, the JSON that maps their labels to what they need. It
# may change (more variants are published later), so it is cached like a page.
_VARIANTS_FILE = re.compile(r"[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+-variants\.json")


def variant_label(filename: str) -> str | None:
    """The variant label of a wheel's filename (PEP 825); None for a wheel without one, or
    any other file. A sixth part is a build tag if it starts with a digit (a Python tag never
    does), else the label; a seventh is always the label."""
    parts = filename.removesuffix(".whl").split("-") if filename.endswith(".whl") else []
    labelled = len(parts) == 7 or (len(parts) == 6 and not parts[2][:1].isdigit())
    return parts[-1] if labelled and _VARIANT_LABEL.fullmatch(parts[-1]) else None


def without_variant(filename: str) -> str:
    """A wheel's filename without its variant label, if it has one."""
    label = variant_label(filename)
    return filename.removesuffix(f"-{label}.whl") + ".whl" if label else filename


def parse_wheel(filename: str) -> tuple[CanonicalName, Version, BuildTag, frozenset[Tag]]:
    """packaging's `parse_wheel_filename`, for variant wheels too (their label left out)."""
    return parse_wheel_filename(without_variant(filename))


def is_variants_file(filename: str) -> bool:
    """Whether this is a version's `<name>-<version>-variants.json` (PEP 825)."""
    return _VARIANTS_FILE.fullmatch(filename) is not None


def name_and_version(filename: str) -> tuple[NormalizedName, Version] | None:
    """The project and version a distribution's filename names (a wheel, an sdist, and the
    older forms pip and uv still install: `.tar.bz2`, `.tar.xz`, `.tgz`, eggs); None for
    other files."""
    try:
        if filename.endswith(".whl"):
            name, version, *_ = parse_wheel(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return _older_form(filename)
    return NormalizedName(name), version


_OLDER_FORM = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._]*?)-(?P<version>[^-]+)(?:-py\d[^-]*(?:-.+)?)?"
    r"\.(?:tar\.bz2|tar\.xz|tbz|txz|tgz|tar|egg)"
)


def _older_form(filename: str) -> tuple[NormalizedName, Version] | None:
    match = _OLDER_FORM.fullmatch(filename)
    if match is None:
        return None
    try:
        return NormalizedName(canonicalize_name(match["name"])), Version(match["version"])
    except InvalidVersion:
        return None


Yanked = bool | str
"""False, True (yanked without a reason) or the reason; PEP 691's three cases."""


@dataclass(frozen=True)
class FileLink:
    """One distribution file as an upstream listed it.

    `url` is the absolute upstream location; it never reaches a client. `metadata_sha256` is
    the PEP 658 metadata hash when the upstream advertised one (`""`: advertised without hash).
    """

    filename: str
    url: str
    sha256: str | None = None
    requires_python: str | None = None
    yanked: Yanked = False
    size: int | None = None
    upload_time: str | None = None
    metadata_sha256: str | None = None
    provenance: str | None = None  # PEP 740: the upstream URL of its provenance
    md5: str | None = None  # all an old conda package may be listed with (checked when no sha256)

    @property
    def key(self) -> str:
        """What names the file while it downloads: its sha256, or, for a file listed without
        one, a digest of its URL."""
        return self.sha256 or hashlib.sha256(self.url.encode()).hexdigest()

    @property
    def mutable(self) -> bool:
        """Whether the upstream may change the bytes at this file's URL: a variants.json.
        Listed without a hash, what the proxy learns of it holds for a page's TTL only."""
        return is_variants_file(self.filename)

    @property
    def offers_metadata(self) -> bool:
        """Whether clients are offered `<file>.metadata` (PEP 658): for every wheel, since the
        proxy can always serve it (the upstream's, or read out of the wheel); for no other
        file, where an offer not kept would fail the client hard."""
        return self.filename.endswith(".whl")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileLink:
        return cls(**data)


@dataclass(frozen=True)
class ProjectStatus:
    """PEP 792: `active`, `archived`, `quarantined` or `deprecated`, with an optional reason."""

    status: str
    reason: str | None = None


@dataclass(frozen=True)
class ProjectPage:
    """A project's files, in the order the upstream listed them, and the mirror (its index
    URL) that listed them; with what the upstream said of the project itself: its PEP 792
    status, and the PEP 708 `tracks` and `alternate-locations` URLs."""

    name: NormalizedName
    files: tuple[FileLink, ...] = ()
    source: str = ""
    status: ProjectStatus | None = None
    tracks: tuple[str, ...] = ()
    alternate_locations: tuple[str, ...] = ()
    _by_filename: dict[str, FileLink] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._by_filename.update((f.filename, f) for f in self.files)

    def file(self, filename: str) -> FileLink | None:
        return self._by_filename.get(filename)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "source": self.source,
            "files": [f.to_dict() for f in self.files],
        }
        if self.status is not None:
            data["status"] = [self.status.status, self.status.reason]
        if self.tracks:
            data["tracks"] = list(self.tracks)
        if self.alternate_locations:
            data["alternate_locations"] = list(self.alternate_locations)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProjectPage:
        status = data.get("status")
        return cls(
            name=NormalizedName(data["name"]),
            files=tuple(FileLink.from_dict(f) for f in data["files"]),
            source=data.get("source", ""),
            status=ProjectStatus(*status) if status else None,
            tracks=tuple(data.get("tracks", ())),
            alternate_locations=tuple(data.get("alternate_locations", ())),
        )


@dataclass(frozen=True)
class FileOrigin:
    """Where a file a client asks for comes from: the upstream group, the page of one of its
    mirrors that listed it, and the link on that page."""

    upstream: Upstream
    page: ProjectPage
    link: FileLink
    # Where the group's mirrors keep it, when their layout says so (a conda channel's file):
    # (mirror URL, file URL) pairs. None: looked up on each mirror's page.
    elsewhere: tuple[tuple[str, str], ...] | None = None


class CacheResult(Enum):
    """How an answer was served, sent to clients as `X-Cache`."""

    HIT = "HIT"  # from the cache, fresh
    MISS = "MISS"  # fetched from upstream for this request
    STALE = "STALE"  # from the cache, past its TTL (refreshed behind, or upstream down)
    PASS = "PASS"  # from upstream, not kept (no room in the cache)
