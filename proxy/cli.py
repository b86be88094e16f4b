"""`pypi-proxy`: the command line. Each command is a module of `commands` with its HELP, its
arguments and `run`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from .commands import (
    cache_admin,
    check,
    client_config,
    export_bundle,
    import_bundle,
    prefetch,
    routes,
    serve,
)
from .commands.arguments import UsageError, add_config_option

COMMANDS: dict[str, ModuleType] = {
    "serve": serve,
    "routes": routes,
    "client-config": client_config,
    "prefetch": prefetch,
    "cache": cache_admin,
    "check": check,
    "export": export_bundle,
    "import": import_bundle,
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pypi-proxy", description="A caching package-index proxy for pip, uv and Poetry."
    )
    commands = top.add_subparsers(dest="command")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.HELP, description=command.__doc__)
        add_config_option(sub)
        command.add_arguments(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    if args.command is None:
        top.print_help()
        return 2
    try:
        code: int = COMMANDS[args.command].run(args)
    except UsageError as exc:
        print(f"pypi-proxy: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
