"""`pypi-proxy serve`: run the proxy, with one worker process or several sharing the cache."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import obstore.exceptions
import uvicorn
from starlette.applications import Starlette

from ..core import config_values as read
from ..core.client_setup import pip_ini
from ..core.config import Config, ConfigError
from ..core.local_folders import HOSTED
from ..server import logs
from ..server.app import create_app
from ..server.bucket import Bucket
from ..server.http_protocol import ProxyProtocol
from ..server.local_folders import folders
from ..server.locks import CROSS_PROCESS
from .addresses import client_urls
from .arguments import UsageError, load

HELP = "run the proxy"
# Worker processes import the app by name; they rebuild the config from these arguments.
_WORKER_ARGS = "PYPI_PROXY_WORKER_ARGS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (overrides listen.host)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides listen.port)")
    parser.add_argument("--cache-dir", type=Path, help="cache directory (overrides cache.dir)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=logs.FORMATS,
        help="text lines, or one JSON object per line (for a log collector)",
    )
    parser.add_argument(
        "--drain-timeout",
        metavar="DURATION",
        help="on SIGTERM, how long downloads under way may take to finish (overrides "
        "listen.drain_timeout; default 60s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the cache (each file is still downloaded once)",
    )


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    _check_places(config)
    if args.workers < 1:
        raise UsageError("--workers: expected 1 or more")
    if args.workers > 1 and not CROSS_PROCESS:
        raise UsageError("--workers: one worker process only on this platform")
    logs.configure(args.log_level, args.log_format)
    _raise_open_files_limit()
    print(banner(config), flush=True)
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": args.log_level,
        # Logging is ours (one format for everything); the access log is the proxy's own,
        # which knows the cache result and the bytes sent.
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 5,
        "http": partial(
            ProxyProtocol,
            header_timeout=config.client_header_timeout,
            send_timeout=config.client_send_timeout,
        ),
    }
    if args.workers == 1:
        uvicorn.run(create_app(config), **options)
    else:
        os.environ[_WORKER_ARGS] = json.dumps(_worker_args(args))
        uvicorn.run(f"{__name__}:worker_app", factory=True, workers=args.workers, **options)
    return 0


def _check_places(config: Config) -> None:
    """What the config names on this machine and beyond is there, before serving: the
    cache directory, advisory files, local folders, the object store's settings."""
    try:
        config.cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cache.dir {config.cache_dir}: {exc.strerror}") from None
    for policy in config.policies():
        if policy.advisories is not None and not policy.advisories.exists():
            raise UsageError(f"policy.advisories: {policy.advisories}: no such file or directory")
    for url, folder in folders(config).items():
        if url.startswith(f"{HOSTED}:"):
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            group = next(u.name for u in config.upstreams if url in u.mirrors)
            raise UsageError(f"upstreams.{group}: {folder}: no such folder")
    if config.store is not None:
        try:
            Bucket(config.store, config)  # its settings and credentials file, read now
        except (ValueError, obstore.exceptions.BaseError) as exc:
            raise UsageError(str(exc).splitlines()[0]) from None


def _raise_open_files_limit() -> None:
    """Every client and upstream connection, and every file served, is a descriptor; the
    soft limit (often 1024) is raised to the hard one, for this process and its workers."""
    try:
        import resource  # POSIX only
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An "unlimited" hard limit (macOS) is no soft one: then as many as the system lets.
    unlimited = hard == resource.RLIM_INFINITY
    for wanted in (65536, 10240) if unlimited else (hard,):
        if wanted > soft:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                return


def worker_app() -> Starlette:
    """The app of one worker process under `--workers N` (all share the cache)."""
    args = argparse.Namespace(**json.loads(os.environ[_WORKER_ARGS]))
    logs.configure(args.log_level, args.log_format)
    args.config = Path(args.config) if args.config else None
    args.cache_dir = Path(args.cache_dir) if args.cache_dir else None
    return create_app(_config(args))


def banner(config: Config) -> str:
    urls = client_urls(config)
    lines = [f"pypi-proxy: serving on {config.host}:{config.port}, cache in {config.cache_dir}"]
    lines += ["Point clients at:"] + [f"  {url}" for url in urls]
    lines += ["", "pip.ini (Windows: %APPDATA%\\pip\\pip.ini) or pip.conf:", pip_ini(urls[0])]
    lines += [f"Status, and setup for every client: {urls[0].removesuffix('simple/')}"]
    return "\n".join(lines)


def _worker_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "config": str(args.config.resolve()) if args.config else None,
        "host": args.host,
        "port": args.port,
        "cache_dir": str(args.cache_dir.expanduser().resolve()) if args.cache_dir else None,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "drain_timeout": args.drain_timeout,
    }


def _config(args: argparse.Namespace) -> Config:
    """The config file's, with what the command line overrides."""
    config = load(args)
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"--port: expected a port number 0-65535, got {args.port}")
    drain = config.drain_timeout
    if args.drain_timeout is not None:
        try:
            drain = read.duration(args.drain_timeout, "--drain-timeout")
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    return dataclasses.replace(
        config,
        drain_timeout=drain,
        host=args.host or config.host,
        port=config.port if args.port is None else args.port,
        cache_dir=args.cache_dir.expanduser() if args.cache_dir else config.cache_dir,
    )
