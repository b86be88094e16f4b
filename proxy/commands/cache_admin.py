"""`pypi-proxy cache stats | verify | prune`: look after the cache directory.

Safe while the proxy runs on the same cache: stored files never change once written, a
file removed while a client reads it stays readable to that client (POSIX), and the proxy
downloads again whatever it no longer finds.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import obstore.exceptions

from ..core.units import human_duration as duration
from ..core.units import human_size as size
from ..core.units import parse_duration, parse_size
from ..server.blobs import BlobStore
from ..server.bucket import Bucket
from ..server.conda_listing import CondaListing
from ..server.index_db import IndexDB
from .arguments import load, value_type
from .tables import table

HELP = "what is cached; re-hash every file and drop corrupt ones; shrink the cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, help="cache directory (overrides cache.dir)")
    actions = parser.add_subparsers(dest="action", required=True)
    stats = actions.add_parser("stats", help="what is cached, and how much room is left")
    stats.add_argument("--top", type=int, default=20, help="list the N largest files (default 20)")
    actions.add_parser("verify", help="re-hash every file, remove those that do not match")
    prune = actions.add_parser(
        "prune", help="remove files; with no option, down to the config's limits"
    )
    prune.add_argument(
        "--older-than",
        type=value_type(parse_duration),
        metavar="AGE",
        help="remove files last used longer ago than this (30d, 12h, 2w)",
    )
    prune.add_argument(
        "--max-size",
        type=value_type(parse_size),
        metavar="SIZE",
        help="then remove the least recently used until the cache is at most this (50GB)",
    )


def run(args: argparse.Namespace) -> int:
    config = load(args)
    root: Path = args.cache_dir.expanduser() if args.cache_dir else config.cache_dir
    if not (root / "files").is_dir():
        print(f"pypi-proxy: cache: no cache at {root}", file=sys.stderr)
        return 2
    store = BlobStore(root, config.max_size, config.min_free)
    if args.action == "stats":
        if config.store is not None:
            _bucket_stats(Bucket(config.store, config))
        return _stats(store, root, args.top)
    if args.action == "verify":
        local = _verify(store, root)
        if config.store is None:
            return local
        return max(local, _verify_bucket(Bucket(config.store, config)))
    return _prune(store, root, args.older_than, args.max_size)


def _stats(store: BlobStore, root: Path, top: int) -> int:
    files = store.scan()
    used = sum(s for _, s, _ in files)
    parts = list(store.tmp.glob("*.part"))
    limit = f" of {size(store.max_size)}" if store.max_size else " (no size limit)"
    print(f"cache:     {root}")
    print(f"files:     {len(files):,}, {size(used)}{limit}")
    free = shutil.disk_usage(store.files).free
    print(f"disk free: {size(free)} (kept above {size(store.min_free)})")
    if parts:
        print(f"partial:   {len(parts)} downloads in progress or interrupted")
    now = time.time()
    if files:
        print(f"last used: newest {duration(now - max(files)[0])} ago, "
              f"oldest {duration(now - min(files)[0])} ago")  # fmt: skip
    if top > 0 and files:
        names = _names(root)
        rows = [("size", "last used", "file")]
        for used_at, length, path in sorted(files, key=lambda f: -f[1])[:top]:
            rows.append((size(length), duration(now - used_at), names.get(path.name, path.name)))
        print("\n" + "\n".join(table(rows, right={0, 1})))
    _conda_stats(root, {path.name: length for _, length, path in files})
    return 0


def _conda_stats(root: Path, stored: dict[str, int]) -> None:
    """The conda channels' share of the cache: index files, and the packages asked for that
    are in the store, by channel."""
    listing = _conda_listing(root)
    if listing is None:
        return
    try:
        listed, served = listing.listed(), listing.served_names()
    finally:
        listing.close()
    documents = [p for p in (root / "conda" / "index").rglob("*") if p.is_file()
                 and not p.name.endswith(".meta.json") and not p.name.startswith(".")]  # fmt: skip
    documents_size = size(sum(p.stat().st_size for p in documents))
    held: dict[str, list[int]] = {}
    for sha256, (channel, _) in served.items():
        if sha256 in stored:
            held.setdefault(channel, []).append(stored[sha256])
    in_store = sum(len(v) for v in held.values())
    print(f"\nconda:     {len(documents):,} index files ({documents_size}), "
          f"{listed:,} packages listed, {in_store:,} cached")  # fmt: skip
    rows = [("channel", "packages", "size")]
    rows += [(c, f"{len(v):,}", size(sum(v))) for c, v in sorted(held.items())]
    if held:
        print("\n".join(table(rows, right={1, 2})))


def _verify(store: BlobStore, root: Path) -> int:
    files = store.scan()
    names = _names(root) if files else {}
    checked = corrupt = 0
    for n, (_, _, path) in enumerate(files, 1):
        good = store.verify(path)
        if good is False:
            path.unlink(missing_ok=True)
            corrupt += 1
            print(f"removed {names.get(path.name, path.name)}: its bytes do not match its sha256")
        checked += good is not None
        if sys.stderr.isatty():
            print(f"\rverified {n}/{len(files)}", end="", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{checked:,} files verified, {corrupt} corrupt and removed")
    return 1 if corrupt else 0


def _bucket_stats(bucket: Bucket) -> None:
    """What the object store holds (one listing: cheap beside re-hashing it)."""
    try:
        objects = list(bucket.objects())
    except (obstore.exceptions.BaseError, OSError) as exc:
        print(f"store:     {bucket.spec.url}: unreachable ({str(exc).splitlines()[0]})")
        return
    print(
        f"store:     {bucket.spec.url}: {len(objects):,} files, {size(sum(n for _, n in objects))}"
    )


def _verify_bucket(bucket: Bucket) -> int:
    """The object store's files, re-hashed as the local ones are; corrupt ones deleted."""
    checked = corrupt = 0
    try:
        for sha256, _ in bucket.objects():
            good = bucket.matches(sha256)
            if good is False:
                bucket.remove(sha256)
                corrupt += 1
                print(f"removed {sha256} from {bucket.spec.url}: its bytes do not match")
            checked += good is not None
    except (obstore.exceptions.BaseError, OSError) as exc:
        print(f"pypi-proxy: cache verify: {bucket.spec.url}: {exc}", file=sys.stderr)
        return 2
    print(f"{checked:,} files verified in {bucket.spec.url}, {corrupt} corrupt and removed")
    return 1 if corrupt else 0


def _prune(store: BlobStore, root: Path, older_than: float | None, max_size: int | None) -> int:
    before = store.totals()
    if max_size is not None:
        store.max_size = max_size
    cutoff = 0.0 if older_than is None else time.time() - older_than
    freed = store.evict(used_before=cutoff)
    files, used = store.totals()
    print(f"removed {before[0] - files:,} files ({size(freed)}); "
          f"{files:,} files, {size(used)} left in {root}")  # fmt: skip
    return 0


def _names(root: Path) -> dict[str, str]:
    """`project/filename` of stored files, by sha256, from the cached index pages; a file
    whose page is no longer cached keeps its sha256 for a name."""
    names: dict[str, str] = {}
    by_url: dict[str, str] = {}
    db = IndexDB(root)
    try:
        for page in db.project_pages():
            for link in page.get("files", ()):
                name = f"{page['name']}/{link['filename']}"
                by_url[link["url"]] = name
                if link.get("sha256"):
                    names[link["sha256"]] = name
                if link.get("metadata_sha256"):
                    names[link["metadata_sha256"]] = name + ".metadata"
                if link.get("provenance"):
                    by_url[link["provenance"]] = name + ".provenance"
        for lesson, url, sha256 in db.learned():
            if url in by_url:
                names[sha256] = by_url[url] + (".metadata" if lesson == "metadata" else "")
    finally:
        db.close()
    listing = _conda_listing(root)
    if listing is not None:
        try:
            served = listing.served_names()
        finally:
            listing.close()
        names.update((sha256, f"conda:{c}/{name}") for sha256, (c, name) in served.items())
    return names


def _conda_listing(root: Path) -> CondaListing | None:
    path = root / "conda" / "listing.sqlite3"
    return CondaListing(path) if path.exists() else None
