"""`pypi-proxy import BUNDLE`: put what a bundle (`pypi-proxy export`) holds into the cache,
each member checked against the manifest and each file against its own name first. What
does not verify is refused by name and nothing of it is kept; a cached file is never
replaced. Afterwards the proxy serves those projects with every upstream unreachable."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import uuid
from pathlib import Path

from ..core.bundle import MANIFEST, BadBundle, Member, parse_manifest
from ..core.config import Config
from ..core.model import ProjectPage
from ..server.blobs import BlobStore
from ..server.index_db import IndexDB
from .arguments import UsageError, load
from .bundle_files import BundleReader

HELP = "verify a bundle from pypi-proxy export and put what it holds into the cache"
CHUNK = 1024 * 1024
PAGE_LIMIT = 256 * 2**20  # bytes of one page member read into memory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="a folder, or a .tar file")
    parser.add_argument("--cache-dir", type=Path, help="cache directory (overrides cache.dir)")


def run(args: argparse.Namespace) -> int:
    config = load(args)
    root = args.cache_dir.expanduser() if args.cache_dir else config.cache_dir
    store = BlobStore(root, config.max_size, config.min_free)
    db = IndexDB(root)
    refused = added = 0
    try:
        with BundleReader(args.bundle) as bundle:
            with bundle.open(MANIFEST) as body:
                members = parse_manifest(body.read())
            # Files first: a page is imported once what it lists is there.
            for member in sorted(members, key=lambda m: not m.is_file):
                try:
                    added += _import(bundle, member, store, db, config)
                except BadBundle as exc:
                    refused += 1
                    print(f"refused {member.path}: {exc}")
    except BadBundle as exc:
        raise UsageError(f"import: {exc}") from None
    finally:
        db.close()
    print(f"imported {added} of {len(members)} members from {args.bundle}, refused {refused}")
    return 1 if refused else 0


def _import(
    bundle: BundleReader, member: Member, store: BlobStore, db: IndexDB, config: Config
) -> bool:
    """Whether the member was new to the cache."""
    if member.is_file:
        return _import_file(bundle, member, store)
    _import_page(bundle, member, db, config)
    return True


def _import_file(bundle: BundleReader, member: Member, store: BlobStore) -> bool:
    scratch = store.tmp / f"{uuid.uuid4().hex}.put"
    digest, size = hashlib.sha256(), 0
    try:
        with bundle.open(member.path) as source, open(scratch, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > member.size:
                    raise BadBundle(f"more than the manifest's {member.size} bytes")
                digest.update(chunk)
                out.write(chunk)
        if size != member.size or digest.hexdigest() != member.sha256:
            raise BadBundle(f"its bytes do not match its sha256 {member.sha256}")
        return store.adopt(scratch, member.sha256)
    finally:
        scratch.unlink(missing_ok=True)


def _import_page(bundle: BundleReader, member: Member, db: IndexDB, config: Config) -> None:
    group, project = member.page()
    upstream = next((u for u in config.upstreams if u.name == group), None)
    if upstream is None:
        raise BadBundle(f"this config has no upstream group {group!r}")
    with bundle.open(member.path) as source:
        body = source.read(min(member.size, PAGE_LIMIT) + 1)
    if len(body) != member.size or hashlib.sha256(body).hexdigest() != member.sha256:
        raise BadBundle(f"its bytes do not match its sha256 {member.sha256}")
    try:
        page = ProjectPage.from_dict(json.loads(body))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadBundle(f"not a project page ({exc})") from None
    if page.name != project:
        raise BadBundle(f"the page is {page.name!r}'s, not {project!r}'s")
    db.store_entry(db.page_key(upstream, page.name), time.time(), page.to_dict())
