"""Real pip and uv installing a dependency tree through the proxy with one index URL.

Both run isolated from this machine's own client configuration (which adds find-links,
extra indexes and constraints that would mask what the proxy serves).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import pytest
from support.world import TINYAPP, TINYDEP, TINYLIB, TORCH, WITH_METADATA, World
from uv import find_uv_bin

EXPECTED = {
    "tinyapp": "1.0",
    "tinylib": "1.1",
    "torch": "2.3.1+cu121",  # from the PyTorch-like upstream, never the mirror's decoy
    "tinydep": "0.5",  # the mirror's: every project but torch looks there first
    "metapkg": "1.0",
}
WANTED = ["tinyapp", "torch", "metapkg"]


def _isolated_env() -> dict[str, str]:
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_")) and k.lower() not in proxies
    }
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1")
    return env


def _run(*command: str | Path) -> str:
    result = subprocess.run(
        [str(c) for c in command],
        env=_isolated_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _installed(site: Path) -> dict[str, str]:
    return {d.metadata["Name"]: d.version for d in distributions(path=[str(site)])}


def _upstream_file_gets(world: World) -> int:
    def is_file_get(r: object) -> bool:
        return getattr(r, "kind", "") == "file" and getattr(r, "method", "") == "GET"

    return world.mirror.count(is_file_get) + world.torch.count(is_file_get)


def test_pip_install_and_download(world: World, proxy: str, tmp_path: Path) -> None:
    index = f"{proxy}/simple/"
    pip = (sys.executable, "-m", "pip")
    first = tmp_path / "first"
    _run(*pip, "install", "--no-cache-dir", "--index-url", index, "--target", first, *WANTED)
    assert _installed(first) == EXPECTED
    fetched = _upstream_file_gets(world)
    # pip read metapkg's metadata from its .metadata file (PEP 658) through the proxy.
    assert world.mirror.count(WITH_METADATA.filename + ".metadata") == 1

    # A second machine, nothing in its client cache: every file comes from the proxy's disk.
    second = tmp_path / "second"
    _run(*pip, "install", "--no-cache-dir", "--index-url", index, "--target", second, *WANTED)
    assert _installed(second) == EXPECTED
    assert _upstream_file_gets(world) == fetched

    downloads = tmp_path / "downloads"
    _run(
        *pip,
        "download",
        "--no-cache-dir",
        "--index-url",
        index,
        "-d",
        downloads,
        "tinyapp",
        "torch",
    )
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
    uv = find_uv_bin()
    index = f"{proxy}/simple/"
    if round_ == "warm":  # another client filled the proxy's cache first
        _run(uv, "venv", "--python", sys.executable, tmp_path / "warmup")
        _run(
            uv,
            "pip",
            "install",
            "--python",
            tmp_path / "warmup",
            "--index-url",
            index,
            "--cache-dir",
            tmp_path / "uv-cache-warmup",
            *WANTED,
        )
    fetched = _upstream_file_gets(world)

    venv = tmp_path / "venv"
    _run(uv, "venv", "--python", sys.executable, venv)
    _run(
        uv,
        "pip",
        "install",
        "--python",
        venv,
        "--index-url",
        index,
        "--cache-dir",
        tmp_path / "uv-cache",
        *WANTED,
    )
    site = next(venv.glob("lib/python*/site-packages"), None) or venv / "Lib" / "site-packages"
    assert _installed(site) == EXPECTED
    if round_ == "warm":
        assert _upstream_file_gets(world) == fetched
