"""A bundle: what a set of machines needs, carried across an air gap (`pypi-proxy export`,
`pypi-proxy import`). A directory or a tar file holding:

    manifest.json                  every other member, with its sha256 and size
    files/<sha256>                 a verified file (a distribution, or a wheel's metadata)
    pages/<group>/<project>.json   an upstream group's page of the project, as the proxy keeps it

Nothing in a bundle is trusted: the importing side checks every member against the manifest
and every file against its own name, and reads only the member paths named here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
_FILE = re.compile(r"files/(?P<sha256>[0-9a-f]{64})")
_GROUP, _PROJECT = r"[A-Za-z0-9][A-Za-z0-9_.-]*", r"[a-z0-9]+(?:-[a-z0-9]+)*"  # as configured
_PAGE = re.compile(rf"pages/(?P<group>{_GROUP})/(?P<project>{_PROJECT})\.json")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class BadBundle(ValueError):
    """A bundle, or a member of it, that is not what it says."""


@dataclass(frozen=True)
class Member:
    path: str
    sha256: str
    size: int

    @property
    def is_file(self) -> bool:
        return self.path.startswith("files/")

    def page(self) -> tuple[str, str]:
        """The group and project of a page member."""
        found = _PAGE.fullmatch(self.path)
        assert found is not None
        return found["group"], found["project"]


def file_path(sha256: str) -> str:
    return f"files/{sha256}"


def page_path(group: str, project: str) -> str:
    return f"pages/{group}/{project}.json"


def manifest(members: list[Member], created: str) -> bytes:
    entries = [{"path": m.path, "sha256": m.sha256, "size": m.size} for m in members]
    return json.dumps({"format": FORMAT, "created": created, "members": entries}, indent=1).encode()


def parse_manifest(body: bytes) -> list[Member]:
    """The members a manifest lists, each path one a bundle may have; BadBundle otherwise."""
    try:
        document = json.loads(body)
        if document.get("format") != FORMAT:
            raise BadBundle(f"{MANIFEST}: format {document.get('format')!r}, expected {FORMAT}")
        return [_member(entry) for entry in document["members"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, BadBundle):
            raise
        raise BadBundle(f"{MANIFEST}: not a bundle's manifest ({exc})") from None


def _member(entry: Any) -> Member:
    path, sha256, size = entry["path"], entry["sha256"], entry["size"]
    if not isinstance(path, str) or not (_FILE.fullmatch(path) or _PAGE.fullmatch(path)):
        raise BadBundle(f"{MANIFEST}: {path!r} is not a member a bundle may have")
    if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
        raise BadBundle(f"{MANIFEST}: {path}: not a sha256: {sha256!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadBundle(f"{MANIFEST}: {path}: not a size: {size!r}")
    found = _FILE.fullmatch(path)
    if found is not None and found["sha256"] != sha256:
        raise BadBundle(f"{MANIFEST}: {path}: named for another sha256 than {sha256}")
    return Member(path, sha256, size)
