"""`pypi-proxy prefetch`: resolve requirements with pip for each target machine (every platform
times every Python version given) through the running proxy, then download every file they
need through it, so the proxy has them all cached. Exits 1, naming each failure, unless every
target resolved and every file arrived with its sha256 verified. Lock files (`--lock`) and conda
environments (`--conda`) take the same way without pip.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ..core.config import Config, ConfigError
from .addresses import local_url
from .arguments import load, value_type
from .prefetch_conda import conda_environment, prefetch_conda, this_subdir
from .prefetch_downloads import answers, download_all, proxy_client
from .prefetch_locked import locked, prefetch_locked
from .prefetch_plan import (
    Outcome,
    Resolution,
    Target,
    count,
    distinct_files,
    error_tail,
    failure_lines,
    files_in_report,
    pip_command,
    summary_table,
    targets,
)

HELP = "resolve requirements for target machines and download them into the proxy's cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "requirements", nargs="*", metavar="REQUIREMENT", help="requirement specifiers"
    )
    parser.add_argument(
        "-r",
        "--requirement",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a requirements file (repeatable)",
    )
    parser.add_argument(
        "--lock",
        action="append",
        default=[],
        type=Path,
        metavar="LOCKFILE",
        help="a uv.lock, pylock.toml, poetry.lock or pdm.lock: its files, by hash, with no "
        "resolution (repeatable)",
    )
    parser.add_argument(
        "--conda",
        type=Path,
        metavar="ENVIRONMENT",
        help="a conda environment.yml: solved through the proxy's conda channels with "
        "py-rattler, its packages downloaded",
    )
    parser.add_argument(
        "--subdir",
        action="append",
        default=[],
        metavar="SUBDIR",
        help="a conda subdir to solve --conda for, such as linux-64, win-64, osx-arm64 "
        "(repeatable; default: this machine's)",
    )
    parser.add_argument("--index", help="the index (profile) to resolve in (default: the default)")
    parser.add_argument(
        "--python-version",
        action="append",
        default=[],
        type=value_type(_python_version),
        metavar="X.Y",
        help="a target Python version (repeatable; default: this interpreter's)",
    )
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="TAG",
        help="a target platform tag such as win_amd64, manylinux2014_x86_64, "
        "macosx_11_0_arm64 (repeatable; default: this machine)",
    )
    parser.add_argument(
        "--url", help="the running proxy's base URL (default: http://127.0.0.1:<listen.port>)"
    )
    parser.add_argument(
        "--jobs", type=int, default=4, help="resolutions and downloads run at a time (default 4)"
    )


def run(args: argparse.Namespace) -> int:
    config = load(args)
    problem = _usage_problem(args, config)
    if problem is not None:
        print(f"pypi-proxy prefetch: {problem}", file=sys.stderr)
        return 2
    base = (args.url or local_url(config)).rstrip("/")
    index_url = f"{base}/{args.index}/simple/" if args.index else f"{base}/simple/"
    pip_inputs = [item for path in args.requirement for item in ("-r", str(path))]
    pip_inputs += args.requirements
    wanted = targets(args.platform, args.python_version)
    try:
        if args.conda:
            subdirs = args.subdir or [this_subdir()]
            env = conda_environment(config, args.conda, subdirs)
            return asyncio.run(prefetch_conda(base, env, subdirs, args.jobs))
        if args.lock:
            pinned = locked(args.lock)
            return asyncio.run(prefetch_locked(base, index_url, pinned, args.jobs))
        return asyncio.run(_prefetch(base, index_url, pip_inputs, wanted, args.jobs))
    except KeyboardInterrupt:
        print("\npypi-proxy prefetch: interrupted", file=sys.stderr)
        return 130


def _python_version(text: str) -> str:
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
        raise ValueError(f"expected a version such as 3.11, got {text!r}")
    return text


def _usage_problem(args: argparse.Namespace, config: Config) -> str | None:
    try:
        config.index(args.index)
    except ConfigError as exc:
        return f"--index: {exc}"
    problem = _inputs_problem(args)
    if problem is not None:
        return problem
    if args.jobs < 1:
        return "--jobs: expected 1 or more"
    if args.url is not None:
        parts = urlsplit(args.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"--url: expected a base URL such as http://10.0.0.5:3141, got {args.url!r}"
    if not args.conda and importlib.util.find_spec("pip") is None:
        return f"needs pip in the Python that runs it ({sys.executable}): python -m ensurepip"
    return None


def _inputs_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with what is to be prefetched, if anything."""
    pip_inputs = args.requirement or args.requirements
    if not pip_inputs and not args.lock and not args.conda:
        return (
            "nothing to prefetch: give requirements files (-r FILE), requirements, --lock "
            "or --conda"
        )
    if args.lock and pip_inputs:
        return "--lock: give lock files alone (they pin everything already)"
    if args.conda and (pip_inputs or args.lock):
        return "--conda: give a conda environment alone"
    if args.subdir and not args.conda:
        return "--subdir: for --conda only (pip targets take --platform)"
    for option, path in [
        *(("--lock", p) for p in args.lock),
        *(("-r", p) for p in args.requirement),
        *((("--conda", args.conda),) if args.conda else ()),
    ]:
        if not path.is_file():
            return f"{option} {path}: no such file"
    return None


async def _prefetch(
    base: str, index_url: str, inputs: Sequence[str], wanted: Sequence[Target], jobs: int
) -> int:
    async with proxy_client() as client:
        if not await answers(client, base):
            return 2
        print(
            f"resolving for {count(len(wanted), 'target')} with pip, from {index_url}",
            file=sys.stderr,
        )
        limit = asyncio.Semaphore(jobs)
        resolutions = await asyncio.gather(*(_resolve(t, index_url, inputs, limit) for t in wanted))
        outcomes = await download_all(client, base, distinct_files(resolutions), limit)
    return _report(resolutions, outcomes)


def _report(resolutions: Sequence[Resolution], outcomes: Mapping[str, Outcome]) -> int:
    print(summary_table(resolutions, outcomes))
    problems = failure_lines(resolutions, outcomes)
    if not problems:
        return 0
    failed = sum(r.error is not None for r in resolutions)
    failed += sum(o.error is not None for o in outcomes.values())
    print(f"\npypi-proxy prefetch: {failed} failed:", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    return 1


def pip_environment() -> dict[str, str]:
    """This environment without the user's pip configuration (which could add indexes,
    find-links or constraints that are not the proxy's)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


async def _resolve(
    target: Target, index_url: str, inputs: Sequence[str], limit: asyncio.Semaphore
) -> Resolution:
    async with limit:
        with tempfile.TemporaryDirectory(prefix="pypi-proxy-prefetch-") as tmp:
            report = Path(tmp) / "report.json"
            returncode, stderr = await _run_pip(pip_command(target, index_url, report, inputs))
            if returncode != 0:
                print(f"{target.label}: pip failed", file=sys.stderr)
                return Resolution(target, error=error_tail(stderr))
            try:
                data = json.loads(report.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                return Resolution(target, error=f"pip wrote no readable report: {exc}")
    packages, files = files_in_report(data)
    print(f"{target.label}: {count(packages, 'package')}", file=sys.stderr)
    return Resolution(target, packages, tuple(files))


async def _run_pip(command: list[str]) -> tuple[int, str]:
    """pip's exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=pip_environment(),
    )
    try:
        _, stderr = await process.communicate()
    finally:
        if process.returncode is None:  # interrupted: leave no pip behind
            process.kill()
            await process.wait()
    return await process.wait(), stderr.decode(errors="replace")
