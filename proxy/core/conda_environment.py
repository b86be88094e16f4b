"""A conda `environment.yml`, as `pypi-proxy prefetch --conda` reads it: its channels, mapped
onto those the proxy serves, and its package specs; and what a target subdir's machines are
assumed to offer as virtual packages while solving for them elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .conda_channels import DEFAULT_CHANNELS, SUBDIR


class BadEnvironment(ValueError):
    """An environment file that cannot be prefetched (the reason names the key)."""


@dataclass(frozen=True)
class CondaEnvironment:
    channels: tuple[str, ...]  # served channel names, in priority order
    specs: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # what is not conda's to install (the pip: list)


def environment(data: Any, served: Sequence[str], subdirs: Sequence[str]) -> CondaEnvironment:
    """The environment file's content (YAML, loaded), its channels by the names the proxy
    serves them under."""
    if not isinstance(data, dict):
        raise BadEnvironment("expected a mapping with channels and dependencies")
    names = data.get("channels") or ["defaults"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadEnvironment("channels: expected a list of channel names")
    windows = any(s.startswith("win-") for s in subdirs)
    channels: list[str] = []
    for name in names:
        for channel in _served_as(name.strip().rstrip("/"), served, windows):
            if channel not in channels:
                channels.append(channel)
    dependencies = data.get("dependencies")
    if not isinstance(dependencies, list) or not dependencies:
        raise BadEnvironment("dependencies: expected a list of package specs")
    specs = tuple(d.strip() for d in dependencies if isinstance(d, str) and d.strip())
    skipped = tuple(
        f"{key}: (not conda's)" for d in dependencies if isinstance(d, dict) for key in d
    )
    if not specs:
        raise BadEnvironment("dependencies: no conda package specs in it")
    return CondaEnvironment(tuple(channels), specs, skipped)


def _served_as(name: str, served: Sequence[str], windows: bool) -> list[str]:
    if name == "nodefaults":
        return []
    if name == "defaults":
        wanted = DEFAULT_CHANNELS if windows else DEFAULT_CHANNELS[:-1]  # msys2: Windows's
        return [c for c in wanted if c in served]
    short = name
    if "://" in name:  # the channel's URL, on the proxy or on its usual host
        path = urlsplit(name).path.strip("/")
        short = path.removeprefix("conda/") if path.startswith("conda/") else path
    if short not in served:
        raise BadEnvironment(f"channels: {name!r} is not served by the proxy "
                             f"(served: {', '.join(served) or 'none'})")  # fmt: skip
    return [short]


def check_subdirs(subdirs: Sequence[str]) -> None:
    for subdir in subdirs:
        if not SUBDIR.fullmatch(subdir) or subdir == "noarch":
            raise BadEnvironment(f"--subdir: not a platform subdir such as linux-64: {subdir!r}")


def virtual_packages(subdir: str) -> list[tuple[str, str]]:
    """The virtual packages a machine of this subdir is assumed to have (the name and version
    of each), so that what is solved elsewhere is what it would pick: a current glibc and
    macOS, and an NVIDIA driver (where a package has CUDA builds, those are fetched)."""
    system = subdir.split("-", 1)[0]
    if system == "linux":
        return [("__unix", "0"), ("__linux", "5.10"), ("__glibc", "2.28"), ("__cuda", "12.8")]
    if system == "osx":
        return [("__unix", "0"), ("__osx", "13.0")]
    if system == "win":
        return [("__win", "0"), ("__cuda", "12.8")]
    return []
