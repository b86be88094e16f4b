"""Bundles across an air gap: export from a warm proxy's cache, import into a fresh one whose
upstreams are all unreachable, and pip and uv install the same tree through it, with the same
hashes. A member with one flipped byte is refused by name and nothing of it kept; an
incremental bundle holds only what the previous one lacked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from support.clients import install
from support.process import proxy_process
from support.world import TINYAPP, TINYLIB, WITH_METADATA, World

JSON = "application/vnd.pypi.simple.v1+json"
COMMAND = [sys.executable, "-m", "proxy.cli"]


def _cli(*args: str | Path, config: Path) -> subprocess.CompletedProcess[str]:
    command = [*COMMAND, str(args[0]), "--config", str(config), *map(str, args[1:])]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _hashes(base: str, project: str) -> dict[str, Any]:
    page = httpx.get(f"{base}/simple/{project}/", headers={"Accept": JSON}, timeout=30).json()
    return {f["filename"]: (f["hashes"], f.get("core-metadata")) for f in page["files"]}


def _offline(world: World, tmp_path: Path, cache: Path) -> tuple[dict[str, Any], Path]:
    """Settings with the world's groups, every mirror unreachable, and their file."""
    groups = {u.name: {"mirrors": ["http://127.0.0.1:9/simple/"]} for u in world.config().upstreams}
    settings = {"upstreams": groups, "cache": {"dir": str(cache)}}
    path = tmp_path / f"offline-{cache.name}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return settings, path


def test_a_bundle_carries_a_tree_to_an_offline_proxy(world: World, tmp_path: Path) -> None:
    warm = tmp_path / "warm.yaml"
    warm.write_text(yaml.safe_dump(world.settings()))
    with world.proxy() as base:
        install("pip", f"{base}/simple/", tmp_path / "warm-pip", "tinyapp")
        online = {p: _hashes(base, p) for p in ("tinyapp", "tinylib")}
    for out in (tmp_path / "bundle", tmp_path / "bundle.tar"):
        done = _cli("export", out, "--all", config=warm)
        assert done.returncode == 0, done.stderr
    settings, offline = _offline(world, tmp_path, tmp_path / "offline")
    done = _cli("import", tmp_path / "bundle.tar", config=offline)
    assert done.returncode == 0, done.stdout + done.stderr
    with proxy_process(settings, tmp_path) as (_, base):
        for client in ("pip", "uv"):
            got = install(client, f"{base}/simple/", tmp_path / f"offline-{client}", "tinyapp")
            assert got == {"tinyapp": "1.0", "tinylib": "1.1"}
        for project, hashes in online.items():
            offline_hashes = _hashes(base, project)
            for filename, said in offline_hashes.items():
                assert said == hashes[filename]  # the same hashes and metadata hashes


def test_a_flipped_byte_is_refused_and_an_incremental_bundle_holds_only_what_is_new(
    world: World, tmp_path: Path
) -> None:
    warm = tmp_path / "warm.yaml"
    warm.write_text(yaml.safe_dump(world.settings()))
    with world.proxy() as base:
        httpx.get(f"{base}/files/tinylib/{TINYLIB.filename}", timeout=30)
        assert _cli("export", tmp_path / "first", "--all", config=warm).returncode == 0
        httpx.get(f"{base}/files/metapkg/{WITH_METADATA.filename}", timeout=30)
        httpx.get(f"{base}/files/tinyapp/{TINYAPP.filename}", timeout=30)
    done = _cli("export", tmp_path / "second", "--all", "--since", tmp_path / "first", config=warm)
    assert done.returncode == 0, done.stderr
    written = {p.name for p in (tmp_path / "second" / "files").iterdir()}
    assert written == {WITH_METADATA.sha256, TINYAPP.sha256}  # not tinylib again
    manifest = json.loads((tmp_path / "second" / "manifest.json").read_text())
    assert f"files/{TINYLIB.sha256}" in {m["path"] for m in manifest["members"]}
    # By requirements or by lock file: just the files they name.
    (tmp_path / "requirements.txt").write_text("tinyapp==1.0\n")
    lock = tmp_path / "poetry.lock"
    pinned = f'{{ file = "{WITH_METADATA.filename}", hash = "sha256:{WITH_METADATA.sha256}" }}'
    lock.write_text(f'[[package]]\nname = "metapkg"\nversion = "1.0"\nfiles = [{pinned}]\n')
    for option, path, sha256 in (("-r", tmp_path / "requirements.txt", TINYAPP.sha256),
                                 ("--lock", lock, WITH_METADATA.sha256)):  # fmt: skip
        out = tmp_path / f"by{option}"
        assert _cli("export", out, option, path, config=warm).returncode == 0
        assert {p.name for p in (out / "files").iterdir()} == {sha256}
    flipped = tmp_path / "first" / "files" / TINYLIB.sha256
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    _, offline = _offline(world, tmp_path, tmp_path / "refusing")
    done = _cli("import", tmp_path / "first", config=offline)
    assert done.returncode == 1
    assert f"refused files/{TINYLIB.sha256}: its bytes do not match" in done.stdout
    cached = {p.name for p in (tmp_path / "refusing" / "files").rglob("*") if p.is_file()}
    assert TINYLIB.sha256 not in cached
