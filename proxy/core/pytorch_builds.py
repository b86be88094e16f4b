"""The `pytorch:` section: the PyTorch builds a lab uses, declared once, written out as the
upstream groups and indexes that would otherwise be copied by hand for each build.

    pytorch:
      url: https://download.pytorch.org/whl/     # the default
      builds: [cpu, cu118, cu121, cu126, cu128, cu130]
      default: cu121                             # also served at /simple/

Each build `b` becomes the upstream group `pytorch-b` (`<url>b/`) and the index `b`, at
`/b/simple/`: the PyTorch-only projects from that group alone, everything else from the
hand-written groups first, then from that group. A group or an index written by hand under
the same name is kept instead (to put a national mirror before the PyTorch index, say). The
result is YAML data again, which `config_yaml` reads like any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from . import config_values as read
from .config import ConfigError, Index
from .model import FileLink, NormalizedName, ProjectPage
from .routing import route_for

DEFAULT_URL = "https://download.pytorch.org/whl/"
# Projects that come from the PyTorch index alone, for a build: a name with the same
# spelling elsewhere is not the build's.
PYTORCH_ONLY = (
    "torch", "torchvision", "torchaudio", "torchtext", "torchdata", "torchrec", "torchao",
    "fbgemm-gpu", "triton", "pytorch-triton", "pytorch-triton-rocm", "pytorch-triton-xpu",
)  # fmt: skip
KEYS = {"url", "builds", "default", "extensions"}
EXTENSION_KEYS = {"mirrors", "projects", "builds"}


def with_builds(root: dict[Any, Any]) -> dict[Any, Any]:
    """The config data with its `pytorch:` section written out as `upstreams` and `indexes`
    (unchanged without one)."""
    if "pytorch" not in root:
        return root
    spec = read.mapping(root["pytorch"], "pytorch", KEYS)
    url = read.index_url(spec.get("url", DEFAULT_URL), "pytorch.url")
    builds = _names(spec.get("builds"), "pytorch.builds", "the builds, such as [cpu, cu121]")
    default = spec.get("default")
    if default is not None:
        _one_of(builds, default, "pytorch.default")
    if "routes" in root:
        raise ConfigError("routes: with a pytorch section, each index has its own routes")
    written = dict(read.mapping(root.get("upstreams") or {}, "upstreams", None))
    groups = {b: f"pytorch-{b}" for b in builds}
    # The groups of the official index's mirrors: every group written by hand but a build's.
    own = {*groups.values(), *(f"extensions-{b}" for b in builds)}
    mirrors = [name for name in written if name not in own]
    generated = {g: {"mirrors": [f"{url}{b}/"]} for b, g in groups.items() if g not in written}
    upstreams = {**written, **generated}
    indexes = {b: _index(groups[b], mirrors, b == default) for b in builds}
    if "extensions" in spec:
        _add_extensions(_extensions(spec["extensions"], builds), upstreams, indexes, mirrors)
    indexes.update(read.mapping(root.get("indexes") or {}, "indexes", None))
    rest = {k: v for k, v in root.items() if k != "pytorch"}
    return {**rest, "upstreams": upstreams, "indexes": indexes}


def _names(value: Any, key: str, example: str) -> list[str]:
    """A list of names, none twice, at least one."""
    if value is None:
        raise ConfigError(f"{key}: missing; name {example}")
    names = [read.string(n, f"{key}[{i}]") for i, n in enumerate(read.sequence(value, key))]
    if not names:
        raise ConfigError(f"{key}: empty; name {example}")
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{key}[{i}]: {name!r} is listed twice")
    return names


def _one_of(builds: list[str], build: Any, key: str) -> None:
    if build not in builds:
        raise ConfigError(f"{key}: {build!r} is not one of pytorch.builds ({', '.join(builds)})")


@dataclass(frozen=True)
class Extensions:
    """Prebuilt GPU extensions (flash-attn, vllm, ...) from indexes with a folder per build,
    such as the Astral GPU indexes: in each of the `builds`' index, the `projects` come from
    `<mirror><build>/` first, then (as sdists) from the mirrors of the official index."""

    mirrors: list[str]
    projects: list[str]
    builds: list[str]


def _extensions(value: Any, builds: list[str]) -> Extensions:
    spec = read.mapping(value, "pytorch.extensions", EXTENSION_KEYS)
    key = "pytorch.extensions"
    roots = _names(spec.get("mirrors"), f"{key}.mirrors", "indexes with a folder per build")
    mirrors = [read.index_url(m, f"{key}.mirrors[{i}]") for i, m in enumerate(roots)]
    projects = _names(spec.get("projects"), f"{key}.projects", "what they carry: [flash-attn]")
    served = _names(spec["builds"], f"{key}.builds", "builds") if "builds" in spec else builds
    for i, build in enumerate(served):
        _one_of(builds, build, f"{key}.builds[{i}]")
    return Extensions(mirrors, projects, served)


def _add_extensions(
    extensions: Extensions, upstreams: dict[str, Any], indexes: dict[str, Any], mirrors: list[str]
) -> None:
    """Each build's group `extensions-<build>` (unless written by hand), and its route, after
    the PyTorch-only one: those names cannot be taken from the PyTorch index."""
    for build in extensions.builds:
        group = f"extensions-{build}"
        upstreams.setdefault(group, {"mirrors": [f"{m}{build}/" for m in extensions.mirrors]})
        first, *rest = indexes[build]["routes"]
        route = {"projects": extensions.projects, "upstreams": [group, *mirrors]}
        indexes[build]["routes"] = [first, route, *rest]


def _index(group: str, mirrors: list[str], default: bool) -> dict[str, Any]:
    return {
        "default": default,
        "routes": [
            {"projects": list(PYTORCH_ONLY), "upstreams": [group]},
            {"projects": ["*"], "upstreams": [*mirrors, group]},
        ],
    }


# The oldest Linux driver that runs a CUDA major release's builds, by major version: PyTorch's
# wheels bring their CUDA runtime along, so minor version compatibility applies (NVIDIA's
# table: CUDA 11.x needs 450.80.02, 12.x 525.60.13, 13.x 580).
MINIMUM_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580"}
_CUDA = re.compile(r"cu(\d+)(\d)")  # cu121: CUDA 12.1, cu130: 13.0, cu118: 11.8


@dataclass(frozen=True)
class TorchOffer:
    """The newest torch a build's index lists, and what it needs of the machine."""

    version: Version

    @property
    def cuda(self) -> tuple[int, int] | None:
        found = _CUDA.fullmatch(self.version.local or "")
        return (int(found[1]), int(found[2])) if found else None

    def describe(self) -> str:
        """`torch 2.5.1 (CUDA 12.1, Linux driver 525.60.13 or newer)`, `torch 2.9.1 (cpu)`."""
        cuda = self.cuda
        if cuda is None:
            local = f" ({self.version.local})" if self.version.local else ""
            return f"torch {self.version.public}{local}"
        driver = MINIMUM_DRIVER.get(cuda[0])
        needs = f", Linux driver {driver} or newer" if driver else ""
        return f"torch {self.version.public} (CUDA {cuda[0]}.{cuda[1]}{needs})"


def newest_torch(files: Iterable[FileLink]) -> TorchOffer | None:
    """The newest torch release among a page's wheels (no pre-release, nothing yanked)."""
    versions = []
    for link in files:
        try:
            name, version, _, _ = parse_wheel_filename(link.filename)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if name == "torch" and not version.is_prerelease and not link.yanked:
            versions.append(version)
    return TorchOffer(max(versions)) if versions else None


def torch_groups(index: Index) -> tuple[str, ...]:
    """The upstream groups the index routes torch to, in order."""
    route = route_for(index.routes, NormalizedName("torch"))
    return route.upstreams if route else ()


def offer_in(index: Index, cached: Callable[[str], ProjectPage | None]) -> TorchOffer | None:
    """The newest torch the index offers, from the pages `cached` (by upstream group name)
    holds of the groups the index routes torch to; None when none is fetched yet."""
    for upstream in torch_groups(index):
        page = cached(upstream)
        offer = newest_torch(page.files) if page else None
        if offer is not None:
            return offer
    return None


def offer_of(index: Index, cached: Callable[[str], ProjectPage | None]) -> str:
    """What the index offers of torch, as people read it; none fetched yet says so."""
    offer = offer_in(index, cached)
    return offer.describe() if offer else "torch: not fetched yet"


def build_cuda(index: Index, mirrors: Callable[[str], Iterable[str]]) -> tuple[int, int] | None:
    """The CUDA version an index's torch is built for, from the PyTorch build named by the
    index (`cu124`) or by the last folder of a mirror it routes torch to (`.../whl/cu124/`);
    `mirrors` gives an upstream group's mirror URLs. None for a CPU, ROCm or XPU build."""
    names = [index.name]
    names += [url.rstrip("/").rsplit("/", 1)[-1] for g in torch_groups(index) for url in mirrors(g)]
    for name in names:
        found = _CUDA.fullmatch(name)
        if found:
            return int(found[1]), int(found[2])
    return None
