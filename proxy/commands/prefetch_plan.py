"""What `pypi-proxy prefetch` plans and reports (pure): the target machines, the pip command
that resolves for each, the files a pip report names, and the summary at the end."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from ..core.lock_files import LockedFile
from ..core.units import human_size
from .tables import table

# Tails of pip's stderr shown for a target that did not resolve.
ERROR_LINES = 6


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
    """One row per target and a total row of distinct files, then what is in the cache now."""
    rows: list[tuple[str, ...]] = [("platform", "python", "packages", "files", "size", "failed")]
    rows += [_target_row(res, outcomes) for res in resolutions]
    unresolved = sum(r.error is not None for r in resolutions)
    failed = sum(o.error is not None for o in outcomes.values()) + unresolved
    size = human_size(sum(o.size for o in outcomes.values()))
    rows.append(("total (distinct files)", "", "", str(len(outcomes)), size, str(failed)))
    lines = table(rows, right={2, 3, 4, 5}, rule_after={0, len(rows) - 2})
    ok = [o for o in outcomes.values() if o.error is None]
    cached = sum(o.cached for o in ok)
    fetched = human_size(sum(o.size for o in ok if not o.cached))
    lines += [
        "",
        f"{len(ok)} of {len(outcomes)} files in the cache: {cached} already cached, "
        f"{len(ok) - cached} fetched now ({fetched})",
    ]
    unverified = sum(not o.verified for o in ok)
    if unverified:
        lines.append(f"{unverified} of them listed without a sha256, so not verified here")
    return "\n".join(lines)


def _target_row(res: Resolution, outcomes: Mapping[str, Outcome]) -> tuple[str, ...]:
    target = res.target
    if res.error is not None:
        return (target.platform_label, target.python_label, "-", "-", "-", "resolve")
    got = [outcomes.get(f.url, Outcome(error="not downloaded")) for f in res.files]
    return (
        target.platform_label,
        target.python_label,
        str(res.packages),
        str(len(res.files)),
        human_size(sum(o.size for o in got)),
        str(sum(o.error is not None for o in got)),
    )


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


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _port(scheme: str, port: int | None) -> int | None:
    return port if port is not None else {"http": 80, "https": 443}.get(scheme)


def body_problem(
    ref: FileRef, sha256: str, received: int, size: int | None
) -> tuple[str | None, bool]:
    """What is wrong with a downloaded body, if anything, and whether fetching it again may
    help."""
    if size is not None and received != size:
        return f"cut short at byte {received} of {size}", True
    if ref.sha256 is not None and sha256 != ref.sha256.lower():
        return f"sha256 mismatch: expected {ref.sha256}, got {sha256}", False
    return None, False


def distinct_files(resolutions: Sequence[Resolution]) -> dict[str, FileRef]:
    """Every file some target needs, once, by URL."""
    files: dict[str, FileRef] = {}
    for res in resolutions:
        for ref in res.files:
            files.setdefault(ref.url, ref)
    return files


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def locked_refs(
    locked: Sequence[LockedFile], pages: Mapping[str, tuple[str, Mapping[str, Any] | None]]
) -> tuple[list[FileRef], list[str]]:
    """The proxy's URL of each file a lock pins, found by its sha256 on its project's page
    (`pages`: by project, the page's URL and its PEP 691 JSON, None when there is none);
    and, by name, those no upstream lists."""
    refs: dict[str, FileRef] = {}
    missing = []
    for file in locked:
        page_url, page = pages[file.project]
        listed = {f.get("hashes", {}).get("sha256"): f for f in (page or {}).get("files", [])}
        found = listed.get(file.sha256)
        if found is None:
            missing.append(f"{file.project} {file.version}: {file.filename} "
                           f"(sha256 {file.sha256}) is listed by no upstream")  # fmt: skip
            continue
        url = urljoin(page_url, found["url"])
        refs[url] = FileRef(url, file.sha256)
    return list(refs.values()), missing
