"""A folder of wheels and sdists as an upstream mirror (`{path: DIR, kind: local}`): named by
a `local://folder/<absolute path>/` URL, answered by `server.local_folders` as a simple index
of its own (pure here: the URLs, and the pages made of what the folder holds).

Only links that a local folder's own pages give may have that scheme (see
`parse_values.http_url`): no mirror on the network can point the proxy at a local path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlsplit

from .model import NormalizedName, name_and_version

SCHEME = "local"
_PREFIX = f"{SCHEME}://folder"
HOSTED = "hosted"  # the folder of a hosted group's uploads, under the cache directory


def local_url(folder: Path) -> str:
    """The mirror URL of a folder (made absolute against the working directory)."""
    return f"{_PREFIX}{quote(folder.absolute().as_posix())}".rstrip("/") + "/"


def folder_of(url: str) -> Path:
    """The folder a local mirror URL names."""
    return Path(unquote(urlsplit(url).path))


def hosted_url(group: str) -> str:
    """The mirror URL of a hosted group: its uploads' folder (under the cache directory,
    which the command line may still change, so not named here)."""
    return f"{HOSTED}://{group}/"


def is_local(url: str) -> bool:
    """Whether a mirror URL is a folder on this machine (a local one, or a hosted group's)."""
    return url.startswith((f"{SCHEME}:", f"{HOSTED}:"))


@dataclass(frozen=True)
class LocalFile:
    """A distribution in the folder, as its page lists it."""

    filename: str
    size: int
    sha256: str
    requires_python: str | None = None


def project_of(filename: str) -> NormalizedName | None:
    """The project a file in the folder belongs to; None for anything not a distribution."""
    parsed = name_and_version(filename)
    return parsed[0] if parsed else None


def project_page(root: str, name: NormalizedName, files: Iterable[LocalFile]) -> bytes:
    """A PEP 691 page of the project's files, linked absolutely under the folder's URL."""
    entries = [
        {
            "filename": f.filename,
            "url": root + quote(PurePosixPath(f.filename).name),
            "hashes": {"sha256": f.sha256},
            "size": f.size,
            "requires-python": f.requires_python,
        }
        for f in sorted(files, key=lambda f: f.filename)
    ]
    page = {"meta": {"api-version": "1.1"}, "name": name, "files": entries}
    return json.dumps(page).encode()


def project_list(names: Iterable[NormalizedName]) -> bytes:
    """The folder's root: a PEP 691 list of the projects it holds."""
    document = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in sorted(names)]}
    return json.dumps(document).encode()
