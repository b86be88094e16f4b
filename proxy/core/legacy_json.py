"""The official index's older JSON API (`/pypi/<project>/json`, `/pypi/<project>/<version>/json`),
as far as a project page tells it, for the tools that still read it: pip-tools takes the
hashes of a pinned version from there instead of downloading every file.

Only what the page says is given: no summary or description (those are in each file's core
metadata), and only files whose sha256 is known, since a tool that finds a file without one
takes the release as having no hashes at all (it then hashes the files itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packaging.version import InvalidVersion, Version

from .model import FileLink, ProjectPage, name_and_version, without_variant
from .units import upload_time


class NoSuchVersion(LookupError):
    """The page lists no file of the version asked for."""


def legacy_json(
    page: ProjectPage, version: str | None, url: Callable[[FileLink], str]
) -> dict[str, Any]:
    """The document for the project (`version` None) or one of its versions; `url` is a
    file's absolute URL as clients resolve it from the simple page."""
    releases: dict[Version, list[dict[str, Any]]] = {}
    for link in page.files:
        parsed = name_and_version(link.filename)
        if parsed is not None and link.sha256:
            releases.setdefault(parsed[1], []).append(_file(link, url(link)))
    wanted = _version(version) if version is not None else _latest(releases)
    if version is not None and wanted not in releases:
        raise NoSuchVersion(f"{page.name} lists no file of version {version}")
    files = releases.get(wanted, []) if wanted is not None else []
    info = {
        "name": page.name,
        "version": str(wanted) if wanted is not None else None,
        "requires_python": next(
            (f["requires_python"] for f in files if f["requires_python"]), None
        ),
        "yanked": bool(files) and all(f["yanked"] for f in files),
        "yanked_reason": next((f["yanked_reason"] for f in files if f["yanked_reason"]), None),
    }
    document: dict[str, Any] = {
        "info": info,
        "last_serial": 0,
        "urls": files,
        "vulnerabilities": [],
    }
    if version is None:
        document["releases"] = {str(v): releases[v] for v in sorted(releases)}
    return document


def _version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise NoSuchVersion(f"not a version: {text!r}") from None


def _latest(releases: dict[Version, list[dict[str, Any]]]) -> Version | None:
    """The newest release that is not a pre-release nor wholly yanked, as the official index
    names it in `info.version`; the newest of all when there is no such one."""
    final = [
        v
        for v, files in releases.items()
        if not v.is_prerelease and not all(f["yanked"] for f in files)
    ]
    return max(final or releases, default=None)


def _file(link: FileLink, url: str) -> dict[str, Any]:
    wheel = link.filename.endswith(".whl")
    uploaded = upload_time(link.upload_time)
    iso = link.upload_time if uploaded is not None else None
    return {
        "filename": link.filename,
        "url": url,
        "digests": {"sha256": link.sha256},
        "size": link.size,
        "packagetype": "bdist_wheel" if wheel else "sdist",
        "python_version": without_variant(link.filename).split("-")[-3] if wheel else "source",
        "requires_python": link.requires_python,
        "yanked": link.yanked is not False,
        "yanked_reason": link.yanked if isinstance(link.yanked, str) else None,
        "upload_time": iso.rstrip("Z").split(".")[0] if iso else None,
        "upload_time_iso_8601": iso,
        "has_sig": False,
    }
