"""The files a lock file pins, by hash: `uv.lock`, `pylock.toml` (PEP 751), `poetry.lock` and
`pdm.lock`. Each names, for every package, the files it may install with their sha256; that
is all prefetching needs, with no resolution, so a lock made for another Python or platform
works as well.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from .model import InvalidName, NormalizedName, normalize

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (3.10)
    import tomli as tomllib

_SHA256 = re.compile(r"sha256:([0-9a-f]{64})")


class BadLock(ValueError):
    """A lock file this cannot read; the message names the file's kind and what is wrong."""


@dataclass(frozen=True)
class LockedFile:
    project: NormalizedName
    version: str
    filename: str
    sha256: str


def locked_files(name: str, text: str) -> list[LockedFile]:
    """The files pinned by the lock file called `name` (its kind is told by the name, as the
    tools name them: `uv.lock`, `pylock.toml` or `pylock.<name>.toml`, `poetry.lock`,
    `pdm.lock`)."""
    if name == "uv.lock":
        return _packages(name, _toml(name, text).get("package"), _uv_files)
    if re.fullmatch(r"pylock(\.[^.]+)?\.toml", name):
        return _packages(name, _toml(name, text).get("packages"), _pylock_files)
    if name in ("poetry.lock", "pdm.lock"):
        return _packages(name, _toml(name, text).get("package"), _listed_files)
    raise BadLock(f"{name}: not a lock file name this knows (uv.lock, pylock.toml, "
                  "poetry.lock, pdm.lock)")  # fmt: skip


def _toml(name: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadLock(f"{name}: not TOML ({exc})") from None


def _packages(name: str, packages: Any, files_of: Any) -> list[LockedFile]:
    if not isinstance(packages, list):
        raise BadLock(f"{name}: no packages in it")
    found = []
    for number, package in enumerate(packages):
        try:
            project, version = normalize(package["name"]), str(package.get("version", ""))
            pairs: list[tuple[str, str]] = files_of(package)
        except (KeyError, TypeError, AttributeError, InvalidName) as exc:
            raise BadLock(f"{name}: package {number + 1}: not as expected ({exc})") from None
        found += [LockedFile(project, version, filename, sha) for filename, sha in pairs]
    return found


def _uv_files(package: dict[str, Any]) -> list[tuple[str, str]]:
    """uv.lock: `sdist` and `wheels`, each `{url, hash = "sha256:..."}` (a package from a
    path or a git repository has none)."""
    entries = [package["sdist"]] if "sdist" in package else []
    entries += package.get("wheels", [])
    return [
        (_from_url(e["url"], e.get("filename")), _hash(e["hash"])) for e in entries if "url" in e
    ]


def _pylock_files(package: dict[str, Any]) -> list[tuple[str, str]]:
    """PEP 751: `sdist` and `wheels`, each with `name` (or a `url` naming it) and `hashes`."""
    entries = [package["sdist"]] if "sdist" in package else []
    entries += package.get("wheels", [])
    return [(_from_url(e.get("url", ""), e.get("name")), e["hashes"]["sha256"]) for e in entries]


def _listed_files(package: dict[str, Any]) -> list[tuple[str, str]]:
    """poetry.lock and pdm.lock: `files = [{file = NAME, hash = "sha256:..."}]` (pdm may
    give a `url` instead of `file`)."""
    return [
        (_from_url(e.get("url", ""), e.get("file")), _hash(e["hash"]))
        for e in package.get("files", [])
    ]


def _from_url(url: str, given: str | None) -> str:
    return given or unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def _hash(value: str) -> str:
    found = _SHA256.fullmatch(value)
    if found is None:
        raise KeyError(f"not a sha256 hash: {value!r}")
    return found[1]
