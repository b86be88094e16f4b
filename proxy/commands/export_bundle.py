"""`pypi-proxy export OUT`: write what a set of machines needs, from the cache, as a bundle
to carry to an offline proxy (`pypi-proxy import`): the cached files of the projects asked
for (by requirements, or everything cached for the indexes), their metadata, and the pages
listing them. `--since PREVIOUS` leaves out the files the previous bundle holds already."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ..core.bundle import (
    MANIFEST,
    BadBundle,
    Member,
    file_path,
    manifest,
    page_path,
    parse_manifest,
)
from ..core.config import Config, Index, Upstream
from ..core.lock_files import BadLock, locked_files
from ..core.model import FileLink, NormalizedName, ProjectPage, name_and_version, normalize
from ..core.routing import route_for
from ..core.units import format_upload_time
from ..server.blobs import BlobStore
from ..server.index_db import IndexDB
from .arguments import UsageError, index, load
from .bundle_files import BundleReader, BundleWriter

HELP = "write cached projects as a bundle (a folder, or a .tar) for an offline proxy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="a folder, or a file ending in .tar")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("-r", "--requirement", dest="requirements", action="append", type=Path,
                      metavar="FILE", help="the projects and versions a file names")  # fmt: skip
    what.add_argument("--lock", action="append", type=Path, metavar="LOCKFILE",
                      help="the files a lock file (uv, pylock, poetry, pdm) pins")  # fmt: skip
    what.add_argument("--all", action="store_true", help="everything cached for the indexes")
    parser.add_argument("--index", help="only this index (default: every index)")
    parser.add_argument("--since", type=Path, metavar="PREVIOUS", help="leave out what it holds")
    parser.add_argument("--cache-dir", type=Path, help="cache directory (overrides cache.dir)")


def run(args: argparse.Namespace) -> int:
    config = load(args)
    root = args.cache_dir.expanduser() if args.cache_dir else config.cache_dir
    if not (root / "index").is_dir():
        raise UsageError(f"export: no cache at {root}")
    indexes = [index(config, args.index)] if args.index else list(config.indexes)
    wanted = None  # --all
    if args.requirements or args.lock:
        wanted = _requirements(args.requirements) if args.requirements else _locked(args.lock)
    before = _previous(args.since) if args.since else set()
    db, store = IndexDB(root), BlobStore(root)
    try:
        with BundleWriter(args.out) as bundle:
            export = _Export(bundle, db, store, before)
            for upstream, page in _pages(config, db, indexes, wanted):
                export.page(upstream, page)
            members = list(dict.fromkeys(export.members))  # a file listed twice is one member
            bundle.add_bytes(MANIFEST, manifest(members, format_upload_time(time.time())))
    except OSError as exc:
        raise UsageError(f"export: {args.out}: {exc.strerror or exc}") from None
    finally:
        db.close()
    files = [m for m in members if m.is_file]
    print(f"exported {len(files)} files ({sum(m.size for m in files):,} bytes) and "
          f"{len(members) - len(files)} pages to {args.out}")  # fmt: skip
    return 0


Wanted = dict[NormalizedName, Callable[[FileLink], bool]]  # by project: which of its files


def _locked(files: list[Path]) -> Wanted:
    """The files the lock files pin, by project: by filename or sha256."""
    try:
        locked = [f for path in files for f in locked_files(path.name, path.read_text("utf-8"))]
    except (BadLock, OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--lock: {exc}") from None
    pinned: dict[NormalizedName, set[str]] = {}
    for file in locked:
        pinned.setdefault(file.project, set()).update((file.filename, file.sha256))
    return {name: partial(_pinned, names) for name, names in pinned.items()}


def _pinned(names: set[str], link: FileLink) -> bool:
    return link.filename in names or link.sha256 in names


def _requirements(files: list[Path]) -> Wanted:
    """The files of the versions the requirements files allow, by project (options, hashes
    and comments aside)."""
    wanted: dict[NormalizedName, list[Requirement]] = {}
    for path in files:
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"-r {path}: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].split(" --hash", 1)[0].strip().rstrip("\\").strip()
            if not text or text.startswith("-"):
                continue
            try:
                requirement = Requirement(text)
            except InvalidRequirement as exc:
                raise UsageError(f"-r {path}:{number}: {exc}") from None
            wanted.setdefault(normalize(requirement.name), []).append(requirement)
    return {name: partial(_allowed, requirements) for name, requirements in wanted.items()}


def _allowed(requirements: list[Requirement], link: FileLink) -> bool:
    parsed = name_and_version(link.filename)
    return parsed is not None and all(
        r.specifier.contains(parsed[1], prereleases=True) for r in requirements
    )


def _previous(path: Path) -> set[tuple[str, str]]:
    """The members (path, sha256) of an earlier bundle."""
    try:
        with BundleReader(path) as bundle, bundle.open(MANIFEST) as body:
            return {(m.path, m.sha256) for m in parse_manifest(body.read())}
    except BadBundle as exc:
        raise UsageError(f"--since: {exc}") from None


def _pages(
    config: Config, db: IndexDB, indexes: list[Index], wanted: Wanted | None
) -> Iterator[tuple[Upstream, ProjectPage]]:
    """The stored pages to export, once each: of the projects wanted, from the groups the
    indexes route them to; or every page of those groups."""
    groups = {g for i in indexes for r in i.routes for g in r.upstreams}
    for upstream in (u for u in config.upstreams if u.name in groups):
        for page in db.pages_of(upstream):
            if wanted is None:
                yield upstream, page
            elif page.name in wanted and _routed(indexes, page.name, upstream):
                kept = tuple(filter(wanted[page.name], page.files))
                yield upstream, dataclasses.replace(page, files=kept)


def _routed(indexes: list[Index], name: NormalizedName, upstream: Upstream) -> bool:
    return any((r := route_for(i.routes, name)) and upstream.name in r.upstreams for i in indexes)


class _Export:
    """Members written to the bundle (those `before` holds are listed, not written)."""

    def __init__(
        self, bundle: BundleWriter, db: IndexDB, store: BlobStore, before: set[tuple[str, str]]
    ) -> None:
        self._bundle, self._db, self._store, self._before = bundle, db, store, before
        self.members: list[Member] = []
        self._written: set[str] = set()

    def page(self, upstream: Upstream, page: ProjectPage) -> None:
        """The page's cached files, their metadata, and the page listing just those files
        (an offline proxy could serve no other), with the hashes the proxy learned."""
        kept = []
        for link in page.files:
            sha256 = self._db.sha256_of(link)
            if sha256 is None or not self._blob(sha256):
                continue
            metadata = self._db.metadata_sha256_of(link) if link.offers_metadata else None
            if metadata is not None and not self._blob(metadata):
                metadata = None
            kept.append(dataclasses.replace(link, sha256=sha256, metadata_sha256=metadata))
        if kept:
            listed = dataclasses.replace(page, files=tuple(kept))
            body = json.dumps(listed.to_dict()).encode()
            member = Member(
                page_path(upstream.name, page.name), hashlib.sha256(body).hexdigest(), len(body)
            )
            if self._new(member):
                self._bundle.add_bytes(member.path, body)

    def _blob(self, sha256: str) -> bool:
        """Add a cached file; False if the cache lacks it."""
        found = self._store.find(sha256)
        if found is None:
            return False
        member = Member(file_path(sha256), sha256, found.stat().st_size)
        if self._new(member) and member.path not in self._written:  # on two pages: once
            self._written.add(member.path)
            self._bundle.add_file(member.path, found)
        return True

    def _new(self, member: Member) -> bool:
        """Listed in the manifest; whether it is to be written (not in the bundle before)."""
        self.members.append(member)
        return (member.path, member.sha256) not in self._before
