"""The older JSON API, read by a real pip-compile: `--generate-hashes` takes every hash from
it, so that no distribution file is downloaded through the proxy to hash it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from support.clients import CLIENT_TIMEOUT, isolated_env
from support.world import TINYAPP, TINYLIB, World

JSON = "application/vnd.pypi.simple.v1+json"


def _whole_files(world: World) -> list[str]:
    """Distribution files the mirror sent whole (not the ranges metadata is read from)."""
    requests = [r for r in world.mirror.requests if r.kind == "file" and "range" not in r.headers]
    return [r.path for r in requests if not r.path.endswith(".metadata")]


def test_pip_compile_generates_hashes_without_downloading_a_file(
    world: World, tmp_path: Path
) -> None:
    (tmp_path / "requirements.in").write_text("tinyapp\n")
    compile_ = shutil.which("pip-compile", path=str(Path(sys.executable).parent))
    assert compile_, "pip-tools is in the test extras"
    with world.proxy(prefetch={"small_files": 0}) as base:
        command = [compile_, "--generate-hashes", "--no-header", "--quiet",
                   "--index-url", f"{base}/simple/", "--cache-dir", str(tmp_path / "cache"),
                   "--output-file", "requirements.txt", "requirements.in"]  # fmt: skip
        done = subprocess.run(command, cwd=tmp_path, env=isolated_env(), capture_output=True,
                              text=True, timeout=CLIENT_TIMEOUT, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        locked = (tmp_path / "requirements.txt").read_text()
        assert f"tinyapp==1.0 \\\n    --hash=sha256:{TINYAPP.sha256}" in locked
        assert f"tinylib==1.1 \\\n    --hash=sha256:{TINYLIB.sha256}" in locked
        assert _whole_files(world) == []  # every hash came from the JSON API
        # Its file URLs are the simple page's links as a client resolves them.
        project = httpx.get(f"{base}/tinylib/json", timeout=10).json()
        page = httpx.get(f"{base}/simple/tinylib/", headers={"Accept": JSON}, timeout=10)
        links = {f["filename"]: str(page.url.join(f["url"])) for f in page.json()["files"]}
        for files in project["releases"].values():
            for file in files:
                assert file["url"] == links[file["filename"]]
