"""Pages and metadata over HTTP/2 where a mirror offers it, files over HTTP/1.1 (a
connection each), and HTTP/1.1 for everything when switched off."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.servers import serve_h2
from support.upstream import FakeUpstream
from support.world import TINYAPP, TINYLIB, World, stock


@pytest.fixture
def tls_world(tmp_path: Path) -> Iterator[tuple[World, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl, for the mirror's certificate")
    mirror, torch = FakeUpstream("mirror"), FakeUpstream("pytorch")
    stock(mirror, torch)
    with serve_h2(mirror.app, tmp_path) as (mirror_url, cert), torch.running() as torch_url:
        yield World(mirror, mirror_url, torch, torch_url, tmp_path / "cache"), cert


def _versions(mirror: FakeUpstream, kind: str) -> set[str]:
    return {r.http_version for r in mirror.requests if r.kind == kind}


def _fetch(world: World, cert: Path, **more: Any) -> None:
    with (
        world.proxy(tls={"ca_bundle": str(cert)}, **more) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        assert client.get("/simple/tinyapp/").status_code == 200
        wheel = f"/files/tinyapp/{TINYAPP.filename}"
        assert client.get(wheel + ".metadata").content == TINYAPP.metadata
        assert client.get(wheel).content == TINYAPP.content
        assert client.get(f"/files/tinylib/{TINYLIB.filename}").content == TINYLIB.content


def test_pages_and_metadata_over_http2_files_over_http1(tls_world: tuple[World, Path]) -> None:
    world, cert = tls_world
    _fetch(world, cert)
    assert _versions(world.mirror, "page") == {"2"}
    files = [r for r in world.mirror.requests if r.kind == "file"]
    ranges = {r.http_version for r in files if "range" in r.headers}  # metadata from the end
    whole = {r.http_version for r in files if "range" not in r.headers}
    assert ranges == {"2"} and whole == {"1.1"}


def test_switched_off_everything_goes_over_http1(tls_world: tuple[World, Path]) -> None:
    world, cert = tls_world
    _fetch(world, cert, mirrors={"http2": False})
    assert _versions(world.mirror, "page") == _versions(world.mirror, "file") == {"1.1"}
