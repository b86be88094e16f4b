"""Several client-facing indexes, one per PyTorch build: each machine gets its torch from one
proxy, and files shared between them are downloaded once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.clients import install
from support.servers import serve
from support.upstream import FakeUpstream
from support.wheels import make_wheel
from support.world import TINYLIB, stock

from proxy import create_app
from proxy.core.config_yaml import parse_config

BUILDS = ("cu121", "cu118", "cpu")
TORCH = {b: make_wheel("torch", f"2.3.1+{b}", requires=["tinydep"]) for b in BUILDS}


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, FakeUpstream]]:
    mirror = FakeUpstream("mirror")
    stock(mirror)
    with ExitStack() as stack:
        mirror_url = stack.enter_context(mirror.running())
        upstreams: dict[str, Any] = {"pypi": {"mirrors": [mirror.root_url(mirror_url)]}}
        indexes: dict[str, Any] = {}
        for build in BUILDS:
            torch = FakeUpstream("pytorch", prefix=f"/whl/{build}")
            torch.add(TORCH[build])
            url = stack.enter_context(torch.running())
            upstreams[f"pytorch-{build}"] = {"mirrors": [torch.root_url(url)]}
            indexes[build] = {
                "default": build == "cu121",
                "routes": [
                    {"projects": ["torch"], "upstreams": [f"pytorch-{build}"]},
                    {"projects": ["*"], "upstreams": ["pypi", f"pytorch-{build}"]},
                ],
            }
        config = {
            "cache": {"dir": str(tmp_path / "cache")},
            "upstreams": upstreams,
            "indexes": indexes,
        }
        base = stack.enter_context(serve(create_app(parse_config(config))))
        yield base, mirror


@pytest.mark.parametrize(("client", "build"), [("pip", "cu118"), ("uv", "cpu"), ("pip", None)])
def test_each_profile_installs_its_own_torch(
    proxy: tuple[str, FakeUpstream], tmp_path: Path, client: str, build: str | None
) -> None:
    base, _ = proxy
    index = f"{base}/{build}/simple/" if build else f"{base}/simple/"  # None: the default
    installed = install(client, index, tmp_path, "torch", "tinyapp")
    assert installed["torch"] == f"2.3.1+{build or 'cu121'}"
    assert installed["tinydep"] == "0.5"  # its dependency from the mirror
    assert installed["tinylib"] == "1.1"


def test_files_are_shared_between_profiles(proxy: tuple[str, FakeUpstream]) -> None:
    base, mirror = proxy
    bodies = {
        httpx.get(f"{base}/{build}/files/tinylib/{TINYLIB.filename}", timeout=30).content
        for build in BUILDS
    }
    assert bodies == {TINYLIB.content}
    assert mirror.count(TINYLIB.filename) == 1


def test_profile_paths(proxy: tuple[str, FakeUpstream]) -> None:
    base, _ = proxy
    assert (
        httpx.get(f"{base}/cu118/simple/TinyLib/").headers["location"] == "/cu118/simple/tinylib/"
    )
    assert httpx.get(f"{base}/cu118/simple").headers["location"] == "/cu118/simple/"
    assert httpx.get(f"{base}/cu999/simple/torch/").status_code == 404
    listing = httpx.get(f"{base}/cpu/simple/").text
    assert '<a href="torch/">torch</a>' in listing and '<a href="tinyapp/">' in listing
    page = httpx.get(f"{base}/cpu/simple/torch/").text
    assert "torch-2.3.1+cpu" in page and "cu121" not in page
    # The default profile is also at its own name.
    assert httpx.get(f"{base}/cu121/simple/torch/").text == httpx.get(f"{base}/simple/torch/").text


def test_a_higher_lookalike_on_the_mirror_never_replaces_the_routed_project(
    proxy: tuple[str, FakeUpstream], tmp_path: Path
) -> None:
    base, mirror = proxy
    evil = make_wheel("torch", "99.0")  # the torchtriton incident, as a test
    mirror.add(evil)
    for build in BUILDS:
        assert "99.0" not in httpx.get(f"{base}/{build}/simple/torch/").text
    assert install("uv", f"{base}/cu118/simple/", tmp_path, "torch")["torch"] == "2.3.1+cu118"
    assert mirror.count(evil.filename) == 0
