"""`pypi-proxy prefetch --conda environment.yml --subdir linux-64`: solve a conda environment
through the proxy's channels with py-rattler (the library behind pixi), once per subdir, then
download every package the solutions need through the proxy, which caches each on the way."""

from __future__ import annotations

import asyncio
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..core.conda_environment import (
    BadEnvironment,
    CondaEnvironment,
    check_subdirs,
    environment,
    virtual_packages,
)
from ..core.config import Config
from .arguments import UsageError
from .prefetch_downloads import answers, download_all, proxy_client
from .prefetch_plan import FileRef, count

SOLVE_TIMEOUT = 600.0


def this_subdir() -> str:
    """This machine's conda subdir: linux-64, osx-arm64, win-64, ..."""
    system = {"win32": "win", "darwin": "osx"}.get(sys.platform, "linux")
    machine = platform.machine().lower()
    arch = {"x86_64": "64", "amd64": "64", "arm64": "arm64", "aarch64": "aarch64"}.get(machine)
    if arch == "arm64" and system == "linux":
        arch = "aarch64"
    return f"{system}-{arch or machine}"


def conda_environment(config: Config, path: Path, subdirs: Sequence[str]) -> CondaEnvironment:
    """The environment file, its channels those the proxy serves; a UsageError naming what
    is wrong with it."""
    served = [c.name for c in config.conda_channels]
    try:
        check_subdirs(subdirs)
        return environment(yaml.safe_load(path.read_text("utf-8")), served, subdirs)
    except (BadEnvironment, OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"--conda {path}: {exc}") from None


async def prefetch_conda(
    base: str, env: CondaEnvironment, subdirs: Sequence[str], jobs: int
) -> int:
    try:
        import rattler  # noqa: F401 (only to say what is missing before anything starts)
    except ImportError:
        raise UsageError("--conda needs py-rattler: pip install 'pypi-proxy[conda]'") from None
    async with proxy_client() as client:
        if not await answers(client, base):
            return 2
        for line in env.skipped:
            print(f"skipped {line}", file=sys.stderr)
        files: dict[str, FileRef] = {}
        failed: list[str] = []
        for subdir in subdirs:
            try:
                records = await _solve(base, env, subdir)
            except Exception as exc:  # whatever the solver raises: this subdir failed
                failed.append(f"{subdir}: cannot solve: {exc}")
                continue
            print(f"{subdir}: {count(len(records), 'package')}", file=sys.stderr)
            for url, sha256 in records:
                files.setdefault(url, FileRef(url, sha256))
        outcomes = await download_all(client, base, files, asyncio.Semaphore(jobs))
    failed += [f"{url}: {o.error}" for url, o in outcomes.items() if o.error]
    print(f"{count(len(files), 'conda package')} through the proxy, "
          f"{count(len(failed), 'failure')}")  # fmt: skip
    for line in failed:
        print(f"  {line}", file=sys.stderr)
    return 1 if failed else 0


async def _solve(base: str, env: CondaEnvironment, subdir: str) -> list[tuple[str, str | None]]:
    """The URL (on the proxy) and sha256 of every package the environment needs on `subdir`."""
    import rattler

    virtual = [
        rattler.GenericVirtualPackage(
            rattler.PackageName(name), rattler.Version(version), rattler.BuildString("0")
        )
        for name, version in virtual_packages(subdir)
    ]
    with tempfile.TemporaryDirectory(prefix="pypi-proxy-conda-") as tmp:
        records: list[Any] = await asyncio.wait_for(
            rattler.solve(
                [rattler.Channel(f"{base}/conda/{name}") for name in env.channels],
                list(env.specs),
                gateway=rattler.Gateway(cache_dir=Path(tmp)),
                platforms=[rattler.Subdir(subdir), rattler.Subdir("noarch")],
                virtual_packages=virtual,
            ),
            SOLVE_TIMEOUT,
        )
    return [(str(r.url), r.sha256.hex() if r.sha256 else None) for r in records]
