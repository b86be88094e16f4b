"""The servers most tests run against: a mirror-like and a PyTorch-like fake upstream, stocked
with a small dependency tree of real wheels, and the proxy over both."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy import create_app
from proxy.core.config import Config
from proxy.core.config_yaml import parse_config

from .servers import serve
from .upstream import FakeUpstream
from .waiting import wait_for
from .wheels import make_wheel

# A small dependency tree: tinyapp -> tinylib; torch (+cu121, from the PyTorch-like upstream)
# -> tinydep, which both upstreams carry in different versions.
TINYLIB_OLD = make_wheel("tinylib", "1.0")
TINYLIB = make_wheel("tinylib", "1.1", requires_python=">=3.8")
TINYAPP = make_wheel("tinyapp", "1.0", requires=["tinylib>=1.0"])
TINYDEP = make_wheel("tinydep", "0.5")
TORCH_DECOY = make_wheel("torch", "2.3.1")
TORCH = make_wheel("torch", "2.3.1+cu121", requires=["tinydep"], payload_size=300_000)
TINYDEP_ON_TORCH = make_wheel("tinydep", "0.4")
ONLY_ON_TORCH = make_wheel("onlytorch", "1.0")
WITH_METADATA = make_wheel("metapkg", "1.0", requires=["tinylib"])
BIG = make_wheel("bigpkg", "1.0", payload_size=3 * 1024 * 1024)


@dataclass
class World:
    mirror: FakeUpstream
    mirror_url: str
    torch: FakeUpstream
    torch_url: str
    cache_dir: Path
    # Index URLs of further mirrors of the official index, tried after `mirror`.
    more_mirrors: list[str] = field(default_factory=list)

    def config(self, **overrides: Any) -> Config:
        pypi = [self.mirror.root_url(self.mirror_url), *self.more_mirrors]
        data: dict[str, Any] = {
            "cache": {"dir": str(self.cache_dir)},
            "timeouts": {"connect": 2, "first_byte": 5, "stall": 5},
            "upstreams": {
                "pypi": {"mirrors": pypi},
                "pytorch": {"mirrors": [self.torch.root_url(self.torch_url)]},
            },
            "routes": [
                {"projects": ["torch", "torchvision"], "upstreams": ["pytorch"]},
                {"projects": ["*"], "upstreams": ["pypi", "pytorch"]},
            ],
        }
        if "indexes" in overrides:
            del data["routes"]  # each index brings its own
        data.update(overrides)
        return parse_config(data)

    def settings(self, **more: Any) -> dict[str, Any]:
        """The world's upstreams and cache as YAML data, for a proxy process of its own."""
        upstreams = self.config().upstreams
        return {
            "upstreams": {u.name: {"mirrors": list(u.mirrors)} for u in upstreams},
            "cache": {"dir": str(self.cache_dir)},
            **more,
        }

    def cached_files(self, *, settled: bool = True) -> set[str]:
        """Names (sha256s) of the files in the proxy's store; `settled`, once the downloads
        under way are done (a client has a file once it is verified, a moment before it is
        on disk and committed)."""
        tmp = self.cache_dir / "tmp"
        if settled:
            wait_for(lambda: not tmp.is_dir() or not any(tmp.glob("*.part")))
        return {p.name for p in (self.cache_dir / "files").rglob("*") if p.is_file()}

    @contextmanager
    def proxy(self, **overrides: Any) -> Iterator[str]:
        with serve(create_app(self.config(**overrides))) as base:
            yield base


def stock(mirror: FakeUpstream, torch: FakeUpstream | None = None) -> None:
    for dist in (TINYLIB_OLD, TINYLIB, TINYAPP, TINYDEP, TORCH_DECOY, BIG):
        mirror.add(dist)
    mirror.add(WITH_METADATA, metadata=True)
    for dist in (TORCH, TINYDEP_ON_TORCH, ONLY_ON_TORCH):
        if torch is not None:
            torch.add(dist)
