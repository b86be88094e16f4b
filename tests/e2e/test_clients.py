"""Real pip and uv installing a dependency tree through the proxy with one index URL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.clients import install, pip_install, run
from support.upstream import RequestRecord
from support.world import TINYAPP, TINYDEP, TINYLIB, TORCH, WITH_METADATA, World

EXPECTED = {
    "tinyapp": "1.0",
    "tinylib": "1.1",
    "torch": "2.3.1+cu121",  # from the PyTorch-like upstream, never the mirror's decoy
    "tinydep": "0.5",  # the mirror's: every project but torch looks there first
    "metapkg": "1.0",
}
WANTED = ["tinyapp", "torch", "metapkg"]


def _upstream_file_gets(world: World) -> int:
    def is_file_get(r: RequestRecord) -> bool:
        return r.kind == "file" and r.method == "GET"

    return world.mirror.count(is_file_get) + world.torch.count(is_file_get)


def test_pip_install_and_download(world: World, proxy: str, tmp_path: Path) -> None:
    index = f"{proxy}/simple/"
    assert pip_install(index, tmp_path / "first", *WANTED) == EXPECTED
    fetched = _upstream_file_gets(world)
    # pip read metapkg's metadata from its .metadata file (PEP 658) through the proxy.
    assert world.mirror.count(WITH_METADATA.filename + ".metadata") == 1

    # A second machine, nothing in its client cache: every file comes from the proxy's disk.
    assert pip_install(index, tmp_path / "second", *WANTED) == EXPECTED
    assert _upstream_file_gets(world) == fetched

    downloads = tmp_path / "downloads"
    run(sys.executable, "-m", "pip", "download", "--no-cache-dir", "--index-url", index,
        "-d", downloads, "tinyapp", "torch")  # fmt: skip
    assert {p.name for p in downloads.iterdir()} == {
        TINYAPP.filename,
        TINYLIB.filename,
        TORCH.filename,
        TINYDEP.filename,
    }
    assert (downloads / TORCH.filename).read_bytes() == TORCH.content
    assert _upstream_file_gets(world) == fetched


@pytest.mark.parametrize("round_", ["cold", "warm"])
def test_uv_pip_install(world: World, proxy: str, tmp_path: Path, round_: str) -> None:
    index = f"{proxy}/simple/"
    if round_ == "warm":  # another client filled the proxy's cache first
        install("uv", index, tmp_path / "warmup", *WANTED)
    fetched = _upstream_file_gets(world)
    assert install("uv", index, tmp_path / "client", *WANTED) == EXPECTED
    if round_ == "warm":
        assert _upstream_file_gets(world) == fetched
