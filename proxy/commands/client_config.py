"""`pypi-proxy client-config`: copy-paste setup for pip, uv, Poetry and PDM, and for conda,
mamba and pixi where the config serves conda channels."""

from __future__ import annotations

import argparse
import sys

from ..core.client_setup import SYSTEMS, client_setup, conda_url
from .addresses import client_urls
from .arguments import index, load

HELP = "print how to point clients at the proxy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    this_system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    parser.add_argument("--os", choices=SYSTEMS, default=this_system, help="client system")
    parser.add_argument("--url", help="the index URL clients use (default: from the config)")
    parser.add_argument("--index", help="the index (profile) to set up (default: the default one)")


def run(args: argparse.Namespace) -> int:
    config = load(args)
    url = args.url
    if url is None:
        chosen = index(config, args.index)
        url = client_urls(config, f"/{chosen.name}/simple/" if args.index else "/simple/")[0]
    conda = conda_url(url, [i.name for i in config.indexes])
    channels = [c.name for c in config.conda_channels]
    print(client_setup(url, args.os, conda, channels), end="")
    return 0
