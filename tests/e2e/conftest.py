"""Real servers on 127.0.0.1 for every test that needs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.seaweed import SeaweedFS, seaweed
from support.upstream import FakeUpstream
from support.world import World, stock


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    mirror, torch = FakeUpstream("mirror"), FakeUpstream("pytorch")
    stock(mirror, torch)
    with mirror.running() as mirror_url, torch.running() as torch_url:
        yield World(mirror, mirror_url, torch, torch_url, tmp_path / "cache")


@pytest.fixture
def proxy(world: World) -> Iterator[str]:
    with world.proxy() as base:
        yield base


@pytest.fixture
def client(proxy: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One S3-compatible server for every test that needs a bucket (each a prefix of its own)."""
    with seaweed(tmp_path_factory.mktemp("s3")) as server:
        yield server
