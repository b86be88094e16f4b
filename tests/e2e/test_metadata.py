"""Core metadata for every wheel (PEP 658): a 300 MB wheel whose upstream has no `.metadata`
is resolved by pip and uv for a few hundred KB of it, and the metadata's hash then verifies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.clients import isolated_env, run
from support.upstream import RequestRecord
from support.wheels import make_wheel
from support.world import World
from uv import find_uv_bin

HUGE = make_wheel("hugetorch", "2.5.0", requires=["tinylib"], payload_size=300 * 1024 * 1024)


def _bytes_of_the_wheel(world: World) -> int:
    def wheel(r: RequestRecord) -> bool:
        return r.path.endswith(HUGE.filename)

    return sum(r.bytes_sent for r in world.mirror.requests if wheel(r))


def _pip_dry_run(index: str, tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--dry-run", "--no-cache-dir",
            "--index-url", index, "--target", str(tmp_path / "t"), "hugetorch"]  # fmt: skip


@pytest.fixture
def stocked(world: World) -> World:
    world.mirror.add(HUGE)  # no metadata file offered upstream
    return world


def test_pip_and_uv_resolve_a_huge_wheel_from_its_end(
    stocked: World, proxy: str, tmp_path: Path
) -> None:
    index = f"{proxy}/simple/"
    pip = _pip_dry_run(index, tmp_path)
    out = run(*pip)
    assert "Would install hugetorch-2.5.0 tinylib-1.1" in out
    first = _bytes_of_the_wheel(stocked)
    print(f"\nbytes of the 300 MB wheel read to resolve it: {first}")
    assert 0 < first < 2 * 1024 * 1024  # its end, not its 300 MB

    # The page now offers the metadata with its hash, which both clients check.
    uv = find_uv_bin()
    run(uv, "venv", "--python", sys.executable, tmp_path / "venv")
    out = run(uv, "pip", "install", "--dry-run", "--python", tmp_path / "venv", "--index-url",
              index, "--cache-dir", tmp_path / "uv-cache", "hugetorch")  # fmt: skip
    assert "hugetorch==2.5.0" in out and "tinylib==1.1" in out
    out = run(*pip)
    assert "Would install hugetorch-2.5.0 tinylib-1.1" in out
    assert _bytes_of_the_wheel(stocked) == first  # metadata served from the cache since


def test_clients_check_the_metadata_hash_the_proxy_offers(
    stocked: World, proxy: str, tmp_path: Path
) -> None:
    pip = _pip_dry_run(f"{proxy}/simple/", tmp_path)
    run(*pip)  # the proxy reads the metadata and learns its hash
    sha = HUGE.metadata_sha256
    stored = stocked.cache_dir / "files" / sha[:2] / sha[2:4] / sha
    stored.write_bytes(HUGE.metadata.replace(b"tinylib", b"evil-lib"))  # damaged on disk
    result = subprocess.run(pip, env=isolated_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "hash" in (result.stdout + result.stderr).lower()
