"""`pypi-proxy prefetch`: resolve requirements with pip for each target machine (every platform
times every Python version given) through the running proxy, then download every file they
need through it, so the proxy has them all cached. Exits 1, naming each failure, unless every
target resolved and every file arrived with its sha256 verified.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import httpx

from ..core.config import Config, ConfigError
from ..core.units import size as human_size

HELP = "resolve requirements for target machines and download them into the proxy's cache"

# Tails of pip's stderr shown for a target that did not resolve.
ERROR_LINES = 6
# Per download: a file that stops moving for this long fails (the proxy itself gives up on a
# stalled upstream after its own stall timeout and may then resume from another mirror).
READ_TIMEOUT = 300.0
ATTEMPTS = 2  # a download cut short is tried once more: the proxy may have resumed meanwhile
CHUNK = 1024 * 1024
REDRAW_INTERVAL = 0.1
NOT_KEPT = (
    "passed through uncached: the proxy's cache has no room for it "
    "(see cache.max_size and cache.min_free)"
)


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
    parser.add_argument("--index", help="the index (profile) to resolve in (default: the default)")
    parser.add_argument(
        "--python-version",
        action="append",
        default=[],
        type=_python_version,
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


def run(args: argparse.Namespace, config: Config) -> int:
    problem = _usage_problem(args, config)
    if problem is not None:
        print(f"pypi-proxy prefetch: {problem}", file=sys.stderr)
        return 2
    base = (args.url or default_url(config)).rstrip("/")
    index_url = f"{base}/{args.index}/simple/" if args.index else f"{base}/simple/"
    pip_inputs = [item for path in args.requirement for item in ("-r", str(path))]
    pip_inputs += args.requirements
    try:
        return asyncio.run(
            _prefetch(
                base, index_url, pip_inputs, targets(args.platform, args.python_version), args.jobs
            )
        )
    except KeyboardInterrupt:
        print("\npypi-proxy prefetch: interrupted", file=sys.stderr)
        return 130


# -- the pure parts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A kind of machine to resolve for; None means this machine's (or interpreter's)."""

    platform: str | None = None
    python: str | None = None

    @property
    def platform_label(self) -> str:
        return self.platform or "this machine"

    @property
    def python_label(self) -> str:
        return self.python or f"{sys.version_info.major}.{sys.version_info.minor}"

    @property
    def label(self) -> str:
        return f"{self.platform_label} / python {self.python_label}"


@dataclass(frozen=True)
class FileRef:
    """A file a target needs: its URL on the proxy and, when listed, its sha256."""

    url: str
    sha256: str | None

    @property
    def filename(self) -> str:
        return unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])


@dataclass
class Resolution:
    target: Target
    packages: int = 0
    files: tuple[FileRef, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How one download went: bytes received, whether the proxy had it already, and what
    went wrong if anything did."""

    size: int = 0
    cached: bool = False
    error: str | None = None
    verified: bool = True  # False: listed without a sha256, so there was nothing to check


def targets(platforms: Sequence[str], pythons: Sequence[str]) -> list[Target]:
    """Every platform with every Python version; a missing axis is this machine's own."""
    on: list[str | None] = [*_unique(platforms)] or [None]
    under: list[str | None] = [*_unique(pythons)] or [None]
    return [Target(platform, python) for platform in on for python in under]


def default_url(config: Config) -> str:
    # A proxy listening on every address answers on loopback; one bound to a single address
    # answers only there.
    host = config.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


_WINDOWS = {"win32": "x86", "win_amd64": "AMD64", "win_arm64": "ARM64"}
_LINUX = re.compile(r"(?:manylinux\d+|manylinux_\d+_\d+|musllinux_\d+_\d+|linux)_(\w+)")
_MACOS = re.compile(r"macosx_\d+_\d+_(\w+)")


def marker_environment(target: Target) -> dict[str, str]:
    """Environment-marker values for the target machine, where they differ from this one.

    pip evaluates markers such as `colorama; sys_platform == "win32"` for the machine it runs
    on, whatever `--platform` says, so a Linux server would leave out what Windows machines
    need. An empty result means: this machine's values serve (or the tag is not known).
    """
    env: dict[str, str] = {}
    if target.python is not None:
        parts = [*target.python.split("."), "0"][:3]
        env["python_version"] = ".".join(parts[:2])
        env["python_full_version"] = ".".join(parts)
    tag = target.platform
    if tag is None:
        return env
    if tag in _WINDOWS:
        env.update(os_name="nt", sys_platform="win32", platform_system="Windows")
        env["platform_machine"] = _WINDOWS[tag]
    elif match := _LINUX.fullmatch(tag):
        env.update(os_name="posix", sys_platform="linux", platform_system="Linux")
        env["platform_machine"] = match[1]
    elif match := _MACOS.fullmatch(tag):
        env.update(os_name="posix", sys_platform="darwin", platform_system="Darwin")
        if match[1] in ("x86_64", "arm64"):  # not universal2, intel, ...: several machines
            env["platform_machine"] = match[1]
    return env


# Runs pip with environment markers evaluated for another machine (see marker_environment).
# pip has no option for that; its vendored `packaging` looks the environment up through this
# one function at every evaluation (pip 22.2, the first with `--report`, to 26.3 at least).
_PIP_WITH_MARKERS = """\
import json, os, runpy, sys
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
overrides = json.loads(sys.argv.pop(1))
from pip._vendor.packaging import markers
if not callable(getattr(markers, "default_environment", None)):
    sys.exit("ERROR: this pip cannot evaluate environment markers for another platform")
this_machine = markers.default_environment
markers.default_environment = lambda: {**this_machine(), **overrides}
runpy.run_module("pip", run_name="__main__", alter_sys=True)
"""


def pip_command(target: Target, index_url: str, report: Path, inputs: Sequence[str]) -> list[str]:
    """The pip dry run that resolves `inputs` for `target` and writes its report."""
    markers = marker_environment(target)
    command = [sys.executable]
    command += ["-c", _PIP_WITH_MARKERS, json.dumps(markers)] if markers else ["-m", "pip"]
    # --ignore-installed: whatever this interpreter has installed is needed by the targets too.
    command += ["install", "--dry-run", "--ignore-installed", "--quiet", "--no-cache-dir"]
    command += ["--report", str(report), "--index-url", index_url]
    parts = urlsplit(index_url)
    if parts.scheme == "http" and parts.hostname:  # pip ignores a plain-http index otherwise
        command += ["--trusted-host", parts.hostname]
    if target.platform is not None or target.python is not None:
        # pip takes wheels only when told what they are for: no sdist can be built for
        # another machine.
        command.append("--only-binary=:all:")
    if target.platform is not None:
        command += ["--platform", target.platform]
    if target.python is not None:
        command += ["--python-version", target.python]
    return [*command, *inputs]


def files_in_report(report: Mapping[str, Any]) -> tuple[int, list[FileRef]]:
    """The number of packages a pip installation report installs, and the files it needs."""
    installs = report.get("install") or []
    files: dict[str, FileRef] = {}
    for item in installs:
        info = item.get("download_info") or {}
        url = info.get("url")
        if not isinstance(url, str):
            continue
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        sha256 = hashes.get("sha256")
        files.setdefault(url, FileRef(url, sha256 if isinstance(sha256, str) else None))
    return len(installs), list(files.values())


def same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.hostname, _port(a.scheme, a.port)) == (
        b.scheme,
        b.hostname,
        _port(b.scheme, b.port),
    )


def error_tail(stderr: str, lines: int = ERROR_LINES) -> str:
    """The end of pip's stderr, where it says what it could not find."""
    kept = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) or "pip failed without a message"


def progress_line(
    done: int, total: int, received: int, expected: int, waiting: int, seconds: float
) -> str:
    """`[ 3/10 files] 12.3 MB of 45.6 MB+ at 4.5 MB/s`; the `+`: files not started yet, whose
    size is not known."""
    width = len(str(total))
    rate = human_size(received / seconds) if seconds > 0 else "-"
    more = "+" if waiting else ""
    return (
        f"[{done:>{width}}/{total} files] {human_size(received)} of "
        f"{human_size(expected)}{more} at {rate}/s"
    )


def summary_table(resolutions: Sequence[Resolution], outcomes: Mapping[str, Outcome]) -> str:
    """One row per target and a total row of distinct files; ASCII only (Windows consoles)."""
    header = ("platform", "python", "packages", "files", "size", "failed")
    rows: list[tuple[str, ...]] = [header]
    for res in resolutions:
        if res.error is not None:
            rows.append(
                (res.target.platform_label, res.target.python_label, "-", "-", "-", "resolve")
            )
            continue
        got = [outcomes.get(f.url, Outcome(error="not downloaded")) for f in res.files]
        rows.append(
            (
                res.target.platform_label,
                res.target.python_label,
                str(res.packages),
                str(len(res.files)),
                human_size(sum(o.size for o in got)),
                str(sum(o.error is not None for o in got)),
            )
        )
    unresolved = sum(r.error is not None for r in resolutions)
    failed = sum(o.error is not None for o in outcomes.values()) + unresolved
    size = sum(o.size for o in outcomes.values())
    rows.append(
        ("total (distinct files)", "", "", str(len(outcomes)), human_size(size), str(failed))
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.insert(-1, lines[1])
    ok = [o for o in outcomes.values() if o.error is None]
    cached = sum(o.cached for o in ok)
    lines.append("")
    lines.append(
        f"{len(ok)} of {len(outcomes)} files in the cache: {cached} already cached, "
        f"{len(ok) - cached} fetched now ({human_size(sum(o.size for o in ok if not o.cached))})"
    )
    unverified = sum(not o.verified for o in ok)
    if unverified:
        lines.append(f"{unverified} of them listed without a sha256, so not verified here")
    return "\n".join(lines)


def failure_lines(resolutions: Sequence[Resolution], outcomes: Mapping[str, Outcome]) -> list[str]:
    """What failed, one entry per target that did not resolve and per file that did not
    arrive verified."""
    lines = []
    for res in resolutions:
        if res.error is not None:
            lines.append(f"{res.target.label}: pip could not resolve the requirements:")
            lines += [f"    {line}" for line in res.error.splitlines()]
    for url, outcome in outcomes.items():
        if outcome.error is not None:
            lines.append(f"{FileRef(url, None).filename}: {outcome.error}")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _port(scheme: str, port: int | None) -> int | None:
    return port if port is not None else {"http": 80, "https": 443}.get(scheme)


def _python_version(text: str) -> str:
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected a version such as 3.11, got {text!r}")
    return text


# -- the shell: pip subprocesses and downloads ------------------------------------------------


def _usage_problem(args: argparse.Namespace, config: Config) -> str | None:
    try:
        config.index(args.index)
    except ConfigError as exc:
        return f"--index: {exc}"
    if not args.requirement and not args.requirements:
        return "nothing to prefetch: give requirements files (-r FILE) or requirements"
    for path in args.requirement:
        if not path.is_file():
            return f"-r {path}: no such file"
    if args.jobs < 1:
        return "--jobs: expected 1 or more"
    if args.url is not None:
        parts = urlsplit(args.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"--url: expected a base URL such as http://10.0.0.5:3141, got {args.url!r}"
    if importlib.util.find_spec("pip") is None:
        return f"needs pip in the Python that runs it ({sys.executable}): python -m ensurepip"
    return None


async def _prefetch(
    base: str, index_url: str, inputs: Sequence[str], wanted: Sequence[Target], jobs: int
) -> int:
    err = sys.stderr
    # No pool timeout: a download waiting for a connection has not failed.
    timeout = httpx.Timeout(READ_TIMEOUT, connect=10.0, pool=None)
    async with httpx.AsyncClient(timeout=timeout) as client:
        try:
            await client.get(f"{base}/-/health", timeout=10.0)
        except httpx.HTTPError as exc:
            print(
                f"pypi-proxy prefetch: no proxy answers at {base} ({exc or type(exc).__name__}); "
                "start it with `pypi-proxy serve`, or give its address with --url",
                file=err,
            )
            return 2
        print(f"resolving for {_count(len(wanted), 'target')} with pip, from {index_url}", file=err)
        limit = asyncio.Semaphore(jobs)
        resolutions = await asyncio.gather(*(_resolve(t, index_url, inputs, limit) for t in wanted))

        files: dict[str, FileRef] = {}
        for res in resolutions:
            for ref in res.files:
                files.setdefault(ref.url, ref)
        outcomes = {
            url: Outcome(error=f"not served by the proxy at {base}: {url}")
            for url in files
            if not same_origin(url, base)
        }
        todo = [ref for url, ref in files.items() if url not in outcomes]
        if todo:
            print(f"downloading {_count(len(todo), 'file')} through the proxy", file=err)
        progress = Progress(len(todo), err)
        got = await asyncio.gather(*(_download(client, ref, limit, progress) for ref in todo))
        progress.close()
    outcomes.update(zip((ref.url for ref in todo), got, strict=True))

    print(summary_table(resolutions, outcomes))
    problems = failure_lines(resolutions, outcomes)
    if not problems:
        return 0
    failed = sum(r.error is not None for r in resolutions)
    failed += sum(o.error is not None for o in outcomes.values())
    print(f"\npypi-proxy prefetch: {failed} failed:", file=err)
    for line in problems:
        print(f"  {line}", file=err)
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
            process = await asyncio.create_subprocess_exec(
                *pip_command(target, index_url, report, inputs),
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
            if process.returncode != 0:
                error = error_tail(stderr.decode(errors="replace"))
                print(f"{target.label}: pip failed", file=sys.stderr)
                return Resolution(target, error=error)
            try:
                data = json.loads(report.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                return Resolution(target, error=f"pip wrote no readable report: {exc}")
    packages, files = files_in_report(data)
    print(f"{target.label}: {_count(packages, 'package')}", file=sys.stderr)
    return Resolution(target, packages, tuple(files))


async def _download(
    client: httpx.AsyncClient, ref: FileRef, limit: asyncio.Semaphore, progress: Progress
) -> Outcome:
    async with limit:
        for _ in range(ATTEMPTS):
            outcome, again = await _download_once(client, ref, progress)
            if outcome.error is None or not again:
                break
        progress.finished(ref, outcome)
        return outcome


async def _download_once(
    client: httpx.AsyncClient, ref: FileRef, progress: Progress
) -> tuple[Outcome, bool]:
    """Stream the file through the proxy (which caches it on the way), hashing it and keeping
    no byte. Also says whether another attempt may go better."""
    digest = hashlib.sha256()
    received, size, cache = 0, None, ""
    try:
        async with client.stream("GET", ref.url) as response:
            if response.status_code != 200:
                body = (await response.aread())[:300].decode(errors="replace").strip()
                refusal = f"HTTP {response.status_code} from the proxy"
                refusal += f": {body.splitlines()[0]}" if body else ""
                return Outcome(error=refusal), response.status_code >= 500
            cache = response.headers.get("x-cache", "")
            if cache == "PASS":  # served, but not kept: tomorrow's clients would miss it
                return Outcome(error=NOT_KEPT), False
            length = response.headers.get("content-length", "")
            size = int(length) if length.isdigit() else None
            progress.begin(size)
            try:
                async for chunk in response.aiter_bytes(CHUNK):
                    digest.update(chunk)
                    received += len(chunk)
                    progress.advance(len(chunk))
            except httpx.HTTPError:
                progress.end(received, size, kept=False)
                raise
    except httpx.HTTPError as exc:
        return Outcome(error=f"broke off at byte {received}: {exc or type(exc).__name__}"), True
    error, again = _check(ref, digest.hexdigest(), received, size)
    progress.end(received, size, kept=error is None)
    if error is not None:
        return Outcome(error=error), again
    return Outcome(size=received, cached=cache == "HIT", verified=ref.sha256 is not None), False


def _check(ref: FileRef, sha256: str, received: int, size: int | None) -> tuple[str | None, bool]:
    """What is wrong with a body, if anything, and whether fetching it again may help."""
    if size is not None and received != size:
        return f"cut short at byte {received} of {size}", True
    if ref.sha256 is not None and sha256 != ref.sha256.lower():
        return f"sha256 mismatch: expected {ref.sha256}, got {sha256}", False
    return None, False


class Progress:
    """One line on stderr, redrawn in place on a terminal; elsewhere (a log, CI) one line per
    finished file. Plain ASCII and `\\r` only: Windows consoles show no ANSI escapes by
    default."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.done = self.active = self.received = self.expected = 0
        self.began = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def begin(self, size: int | None) -> None:
        self.active += 1
        self.expected += size or 0

    def advance(self, count: int) -> None:
        self.received += count
        self._draw()

    def end(self, received: int, size: int | None, *, kept: bool) -> None:
        self.active -= 1
        if not kept:  # a failed attempt's bytes are not in the cache
            self.received -= received
            self.expected -= size or 0

    def finished(self, ref: FileRef, outcome: Outcome) -> None:
        self.done += 1
        if self.tty:
            self._draw(force=True)
            return
        if outcome.error is not None:
            status = "FAILED"
        else:
            status = "cached " if outcome.cached else "fetched"
        width = len(str(self.total))
        line = f"[{self.done:>{width}}/{self.total}] {status} {ref.filename}"
        line += f": {outcome.error}" if outcome.error else f" ({human_size(outcome.size)})"
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.tty or (not force and now - self._drawn < REDRAW_INTERVAL):
            return
        self._drawn = now
        waiting = self.total - self.done - self.active
        line = progress_line(
            self.done, self.total, self.received, self.expected, waiting, now - self.began
        )
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = max(self._width, len(line))
