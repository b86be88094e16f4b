"""`pypi-proxy client-config`: copy-paste setup for pip, uv, Poetry and PDM."""

from __future__ import annotations

import argparse
import sys

from ..core.client_setup import SYSTEMS, client_setup
from .addresses import client_urls
from .arguments import index, load

HELP = "print how to point clients at the proxy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    this_system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    parser.add_argument("--os", choices=SYSTEMS, default=this_system, help="client system")
    parser.add_argument("--url", help="the index URL clients use (default: from the config)")
    parser.add_argument("--index", help="the index (profile) to set up (default: the default one)")


def run(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:  # without a config to read when the URL is given
        config = load(args)
        chosen = index(config, args.index)
        url = client_urls(config, f"/{chosen.name}/simple/" if args.index else "/simple/")[0]
    print(client_setup(url, args.os), end="")
    return 0
