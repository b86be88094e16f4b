"""`pypi-proxy cache stats | verify | prune` on a cache the proxy filled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from support.world import BIG, TINYAPP, TINYDEP, TINYLIB, World

DISTS = (TINYLIB, TINYAPP, TINYDEP, BIG)


@pytest.fixture
def filled(world: World) -> World:
    with world.proxy() as base:
        for dist in DISTS:
            httpx.get(f"{base}/files/{dist.project}/{dist.filename}", timeout=30).raise_for_status()
    assert world.cached_files() == {d.sha256 for d in DISTS}
    return world


def cache(world: World, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp / "config.yaml"
    mirror = world.mirror.root_url(world.mirror_url)
    config.write_text(
        yaml.safe_dump(
            {"cache": {"dir": str(world.cache_dir)}, "upstreams": {"pypi": {"mirrors": [mirror]}}}
        )
    )
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", "cache", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_stats_names_what_is_cached(filled: World, tmp_path: Path) -> None:
    done = cache(filled, tmp_path, "stats")
    assert done.returncode == 0, done.stderr
    total = sum(d.size for d in DISTS)
    assert f"files:     4, {total / 1e6:.1f} MB (no size limit)" in done.stdout
    lines = done.stdout.splitlines()
    listed = lines[lines.index(next(line for line in lines if line.endswith("  file"))) + 1 :]
    assert listed[0].endswith(f"bigpkg/{BIG.filename}")  # the largest first, by its name
    assert {line.split()[-1] for line in listed} == {f"{d.project}/{d.filename}" for d in DISTS}


def test_verify_removes_a_file_corrupted_on_disk(filled: World, tmp_path: Path) -> None:
    bad = filled.cache_dir / "files" / TINYLIB.sha256[:2] / TINYLIB.sha256[2:4] / TINYLIB.sha256
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(data)

    done = cache(filled, tmp_path, "verify")
    assert done.returncode == 1
    assert f"removed tinylib/{TINYLIB.filename}: its bytes do not match" in done.stdout
    assert "4 files verified, 1 corrupt and removed" in done.stdout
    assert filled.cached_files() == {d.sha256 for d in DISTS} - {TINYLIB.sha256}

    again = cache(filled, tmp_path, "verify")
    assert again.returncode == 0 and "3 files verified, 0 corrupt" in again.stdout
    with filled.proxy() as base:  # and the proxy fetches a good copy again
        fresh = httpx.get(f"{base}/files/tinylib/{TINYLIB.filename}", timeout=30)
        assert fresh.content == TINYLIB.content and fresh.headers["x-cache"] == "MISS"


def test_prune_honours_age_and_size(filled: World, tmp_path: Path) -> None:
    files = filled.cache_dir / "files"
    path = {d.filename: files / d.sha256[:2] / d.sha256[2:4] / d.sha256 for d in DISTS}
    now = time.time()
    ages_in_days = {
        TINYLIB.filename: 40,
        TINYAPP.filename: 35,
        TINYDEP.filename: 10,
        BIG.filename: 1,
    }
    for filename, days in ages_in_days.items():
        os.utime(path[filename], (now - days * 86400, now - days * 86400))

    old = cache(filled, tmp_path, "prune", "--older-than", "30d")
    assert old.returncode == 0 and old.stdout.startswith("removed 2 files")
    assert filled.cached_files() == {TINYDEP.sha256, BIG.sha256}

    # Down to a size that only the newest (the big one) fits: the older small one goes.
    small = cache(filled, tmp_path, "prune", "--max-size", f"{BIG.size + 10}B")
    assert small.returncode == 0 and small.stdout.startswith("removed 1 files")
    assert filled.cached_files() == {BIG.sha256}


def test_bad_options_name_themselves(filled: World, tmp_path: Path) -> None:
    wrong = cache(filled, tmp_path, "prune", "--max-size", "lots")
    assert wrong.returncode == 2
    assert "--max-size: expected a size such as 500MB" in wrong.stderr
    wrong = cache(filled, tmp_path, "prune", "--older-than", "soon")
    assert wrong.returncode == 2 and "--older-than: expected a duration" in wrong.stderr
    elsewhere = str(tmp_path / "none")
    nowhere = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "cache", "--cache-dir", elsewhere, "stats"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert nowhere.returncode == 2 and "no cache at" in nowhere.stderr
