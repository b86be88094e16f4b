"""`pypi-proxy`: the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .commands import cache_admin, check, prefetch
from .core.client_setup import SYSTEMS, client_setup, pip_ini
from .core.config import Config, ConfigError, Index, default_config_path, load_config
from .core.model import InvalidName, normalize
from .core.routing import explain
from .server import logs
from .server.app import create_app
from .server.locks import CROSS_PROCESS


class UsageError(Exception):
    """What the user got wrong, said on stderr with exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command in _TOOLS:
            code: int = _TOOLS[args.command].run(args, _load(args.config))
            return code
        return _COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"pypi-proxy: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    config = _serve_config(args)
    try:
        config.cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cache.dir {config.cache_dir}: {exc.strerror}") from None
    if args.workers < 1:
        raise UsageError("--workers: expected 1 or more")
    if args.workers > 1 and not CROSS_PROCESS:
        raise UsageError("--workers: one worker process only on this platform")
    logs.configure(args.log_level, args.log_format)
    print(_banner(config), flush=True)
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": args.log_level,
        # Logging is ours (one format for everything); the access log is the proxy's own,
        # which knows the cache result and the bytes sent.
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 5,
    }
    if args.workers == 1:
        uvicorn.run(create_app(config), **options)
    else:
        # Worker processes import the app by name; they rebuild the config from these args.
        os.environ[_WORKER_ARGS] = json.dumps(_worker_args(args))
        uvicorn.run(f"{__name__}:worker_app", factory=True, workers=args.workers, **options)
    return 0


_WORKER_ARGS = "PYPI_PROXY_WORKER_ARGS"


def worker_app() -> Starlette:
    """The app of one worker process under `--workers N` (all share the cache)."""
    args = argparse.Namespace(**json.loads(os.environ[_WORKER_ARGS]))
    logs.configure(args.log_level, args.log_format)
    args.config = Path(args.config) if args.config else None
    args.cache_dir = Path(args.cache_dir) if args.cache_dir else None
    return create_app(_serve_config(args))


def _worker_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "config": str(args.config.resolve()) if args.config else None,
        "host": args.host,
        "port": args.port,
        "cache_dir": str(args.cache_dir.expanduser().resolve()) if args.cache_dir else None,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pypi-proxy", description="A caching package-index proxy for pip, uv and Poetry."
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the proxy")
    serve.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML config file (default: the bundled {default_config_path().name})",
    )
    serve.add_argument("--host", help="address to listen on (overrides listen.host)")
    serve.add_argument("--port", type=int, help="port to listen on (overrides listen.port)")
    serve.add_argument("--cache-dir", type=Path, help="cache directory (overrides cache.dir)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--log-format",
        default="text",
        choices=logs.FORMATS,
        help="text lines, or one JSON object per line (for a log collector)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the cache (each file is still downloaded once)",
    )
    routes = commands.add_parser("routes", help="show which upstreams a project resolves to")
    routes.add_argument("project", nargs="+")
    routes.add_argument("--config", type=Path, default=None, help="YAML config file")
    routes.add_argument("--index", help="the index (profile) to ask (default: the default one)")
    setup = commands.add_parser("client-config", help="print how to point clients at the proxy")
    setup.add_argument("--os", choices=SYSTEMS, default=_this_system(), help="client system")
    setup.add_argument("--url", help="the index URL clients use (default: from the config)")
    setup.add_argument("--index", help="the index (profile) to set up (default: the default one)")
    setup.add_argument("--config", type=Path, default=None, help="YAML config file")
    for name, tool in _TOOLS.items():
        sub = commands.add_parser(name, help=tool.HELP, description=tool.__doc__)
        sub.add_argument("--config", type=Path, default=None, help="YAML config file")
        tool.add_arguments(sub)
    return parser


def _this_system() -> str:
    return {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")


def _client_config(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:
        config = _load(args.config)
        index = _index(config, args.index)
        path = "/simple/" if args.index is None else f"/{index.name}/simple/"
        url = _index_urls(config, path)[0]
    print(client_setup(url, args.os), end="")
    return 0


def _routes(args: argparse.Namespace) -> int:
    index = _index(_load(args.config), args.index)
    print(f"index {index.name!r}:")
    for raw in args.project:
        try:
            print("  " + explain(index.routes, normalize(raw)))
        except InvalidName as exc:
            print(f"  {raw}: {exc}")
    return 0


def _load(path: Path | None) -> Config:
    try:
        return load_config(path or default_config_path())
    except ConfigError as exc:
        raise UsageError(f"config error: {exc}") from None


def _index(config: Config, name: str | None) -> Index:
    try:
        return config.index(name)
    except ConfigError as exc:
        raise UsageError(f"--index: {exc}") from None


def _serve_config(args: argparse.Namespace) -> Config:
    config = _load(args.config)
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"--port: expected a port number 0-65535, got {args.port}")
    return dataclasses.replace(
        config,
        host=args.host or config.host,
        port=config.port if args.port is None else args.port,
        cache_dir=args.cache_dir.expanduser() if args.cache_dir else config.cache_dir,
    )


def _index_urls(config: Config, path: str = "/simple/") -> list[str]:
    hosts = _lan_addresses() if config.host in ("0.0.0.0", "::", "") else [config.host]
    return [f"http://{h}:{config.port}{path}" for h in hosts]


def _banner(config: Config) -> str:
    urls = _index_urls(config)
    lines = [f"pypi-proxy: serving on {config.host}:{config.port}, cache in {config.cache_dir}"]
    lines += ["Point clients at:"] + [f"  {url}" for url in urls]
    lines += ["", "pip.ini (Windows: %APPDATA%\\pip\\pip.ini) or pip.conf:", pip_ini(urls[0])]
    lines += [f"Status, and setup for every client: {urls[0].removesuffix('simple/')}"]
    return "\n".join(lines)


def _lan_addresses() -> list[str]:
    """This machine's own addresses, from its host name (no packet is sent)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    found = sorted({str(info[4][0]) for info in infos} - {"127.0.0.1", "127.0.1.1"})
    return found or [socket.gethostname()]


_COMMANDS = {"serve": _serve, "routes": _routes, "client-config": _client_config}
# Commands that work on a loaded config: each module has HELP, add_arguments and run.
_TOOLS = {"prefetch": prefetch, "cache": cache_admin, "check": check}

if __name__ == "__main__":
    sys.exit(main())
