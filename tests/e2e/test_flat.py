"""A flat find-links listing (one page of links to every file, as some national mirrors of the
PyTorch index offer) as the first mirror of the PyTorch group, the PyTorch index behind it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from support.clients import install
from support.upstream import FakeUpstream
from support.world import TORCH, World

LISTING = "/flat/torch_stable.html"


@dataclass
class Flat:
    world: World
    flat: FakeUpstream
    base: str


@pytest.fixture
def flat(world: World) -> Iterator[Flat]:
    server = FakeUpstream("mirror", prefix="/unused")
    links = []
    for wheel in (TORCH,):
        server.add_blob(f"/flat/files/{wheel.filename}", wheel.content)
        href = f"files/{quote(wheel.filename)}#sha256={wheel.sha256}"
        links.append(f'<a href="{href}">{wheel.filename}</a><br>')
    server.add_blob(LISTING, "\n".join(links).encode())
    with server.running() as url:
        mirrors = [{"url": url + LISTING, "kind": "flat"}, world.torch.root_url(world.torch_url)]
        upstreams = {
            "pypi": {"mirrors": [world.mirror.root_url(world.mirror_url)]},
            "pytorch": {"mirrors": mirrors},
        }
        with world.proxy(upstreams=upstreams) as base:
            yield Flat(world, server, base)


def test_the_flat_mirror_serves_first(flat: Flat, tmp_path: Path) -> None:
    installed = install("pip", f"{flat.base}/simple/", tmp_path, "torch")
    assert installed["torch"] == "2.3.1+cu121"
    # One download of the wheel (its path logged as sent, with %2B), after one read of its
    # end for the metadata.
    wheel = [r for r in flat.flat.requests if r.path.endswith(quote(TORCH.filename))]
    assert [r.headers.get("range") for r in wheel] == ["bytes=-262144", None]
    assert flat.world.torch.count(lambda r: r.kind == "file") == 0
    assert flat.world.torch.count("/torch/") == 0
    assert flat.flat.count(LISTING) == 1  # one listing for every project asked


def test_a_failing_flat_mirror_falls_back_to_the_pytorch_index(flat: Flat) -> None:
    flat.flat.file_faults.status = 503
    response = httpx.get(f"{flat.base}/files/torch/{TORCH.filename}", timeout=30)
    assert response.content == TORCH.content
    assert flat.world.torch.count(quote(TORCH.filename)) == 1
