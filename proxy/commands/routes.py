"""`pypi-proxy routes`: which upstreams a project resolves to in an index, and why."""

from __future__ import annotations

import argparse

from ..core.model import InvalidName, normalize
from ..core.routing import explain
from .arguments import index, load

HELP = "show which upstreams a project resolves to"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", nargs="+")
    parser.add_argument("--index", help="the index (profile) to ask (default: the default one)")


def run(args: argparse.Namespace) -> int:
    chosen = index(load(args), args.index)
    print(f"index {chosen.name!r}:")
    for raw in args.project:
        try:
            print("  " + explain(chosen.routes, normalize(raw)))
        except InvalidName as exc:
            print(f"  {raw}: {exc}")
    return 0
