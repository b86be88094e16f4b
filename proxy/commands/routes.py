"""`pypi-proxy routes`: which upstreams a project resolves to in an index, and why."""

from __future__ import annotations

import argparse

from ..core.model import InvalidName, normalize
from ..core.policy import refuse_project
from ..core.routing import explain, policy_for
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
            name = normalize(raw)
        except InvalidName as exc:
            print(f"  {raw}: {exc}")
            continue
        print("  " + explain(chosen.routes, name))
        refusal = refuse_project(policy_for(chosen, name), name)
        if refusal is not None:
            print(f"    but {refusal.reason}: 404, never asked upstream")
    return 0
