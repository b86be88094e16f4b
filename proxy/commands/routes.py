"""`pypi-proxy routes`: which upstreams a project resolves to in an index, and why; and what
each index offers of torch, from the pages in the cache."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.config import Config, Index
from ..core.model import InvalidName, NormalizedName, ProjectPage, normalize
from ..core.policy import refuse_project
from ..core.pytorch_builds import offer_of
from ..core.routing import explain, policy_for
from ..server.index_db import IndexDB
from .arguments import index, load

HELP = "show which upstreams a project resolves to, and each index's newest torch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", nargs="*", help="without one: every index and its torch")
    parser.add_argument("--index", help="the index (profile) to ask (default: the default one)")
    parser.add_argument("--cache-dir", type=Path, help="cache directory (overrides cache.dir)")


def run(args: argparse.Namespace) -> int:
    config = load(args)
    chosen = [index(config, args.index)] if args.project or args.index else config.indexes
    with _Pages(config, args.cache_dir) as pages:
        for each in chosen:
            print(f"index {each.name!r}: {offer_of(each, pages.torch)}")
            _explain(each, args.project)
    return 0


def _explain(chosen: Index, projects: list[str]) -> None:
    for raw in projects:
        try:
            name = normalize(raw)
        except InvalidName as exc:
            print(f"  {raw}: {exc}")
            continue
        print("  " + explain(chosen.routes, name))
        refusal = refuse_project(policy_for(chosen, name), name)
        if refusal is not None:
            print(f"    but {refusal.reason}: 404, never asked upstream")


class _Pages:
    """The torch pages in the cache, read as they are (nothing is fetched)."""

    def __init__(self, config: Config, cache_dir: Path | None) -> None:
        self._config = config
        root = cache_dir.expanduser() if cache_dir else config.cache_dir
        self._db = IndexDB(root) if (root / "index").is_dir() else None

    def __enter__(self) -> _Pages:
        return self

    def __exit__(self, *_: object) -> None:
        if self._db is not None:
            self._db.close()

    def torch(self, group: str) -> ProjectPage | None:
        if self._db is None:
            return None
        key = self._db.page_key(self._config.upstream(group), NormalizedName("torch"))
        stored = self._db.entry(key)
        return ProjectPage.from_dict(stored[1]) if stored and stored[1] else None
