"""Prefetch from the lock files people have, each made by the real tool against the proxy:
`uv.lock` (uv), `pylock.toml` (pip lock), `poetry.lock` (Poetry), `pdm.lock` (PDM), and a
requirements file with hashes (pip-compile --generate-hashes, prefetched with -r). A
fresh proxy prefetched from one then serves the matching install with no upstream request:
pages, files and core metadata all from its cache. A locked file no upstream lists fails by
name."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from support.clients import CLIENT_TIMEOUT, install, isolated_env
from support.process import proxy_process
from support.world import TINYAPP, World
from uv import find_uv_bin

BIN = Path(sys.executable).parent
PYPROJECT = """\
[project]
name = "app"
version = "0.1"
requires-python = ">=3.10"
dependencies = ["tinyapp"]

[[tool.poetry.source]]
name = "lan"
url = "{index}"
priority = "primary"

[[tool.pdm.source]]
name = "pypi"
url = "{index}"
verify_ssl = false
"""
LOCKERS: dict[str, Callable[[str], list[str]]] = {
    "uv.lock": lambda index: [find_uv_bin(), "lock", "--default-index", index],
    "pylock.toml": lambda index: [sys.executable, "-m", "pip", "lock", "--index-url", index,
                                  "-r", "requirements.in", "-o", "pylock.toml"],
    "poetry.lock": lambda index: [str(BIN / "poetry"), "lock"],
    "pdm.lock": lambda index: [str(BIN / "pdm"), "lock"],
    # Not a lock, but pinned as well: prefetched with -r (pip resolves it, every hash checked).
    "requirements.txt": lambda index: [str(BIN / "pip-compile"), "--generate-hashes", "--quiet",
                                       "--no-emit-index-url",
                                       "--index-url", index, "--cache-dir", "pip-tools",
                                       "-o", "requirements.txt", "requirements.in"],
}  # fmt: skip


def _lock(kind: str, index: str, project: Path) -> Path:
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT.format(index=index))
    (project / "requirements.in").write_text("tinyapp\n")
    caches = {"UV_CACHE_DIR": "uv", "POETRY_CACHE_DIR": "poetry", "PDM_CACHE_DIR": "pdm",
              "PDM_HOME": "pdm-home", "XDG_CONFIG_HOME": "config"}  # fmt: skip
    env = {**isolated_env(), **{k: str(project / v) for k, v in caches.items()},
           "PDM_CHECK_UPDATE": "false"}  # fmt: skip
    done = subprocess.run(LOCKERS[kind](index), cwd=project, env=env, capture_output=True,
                          text=True, timeout=CLIENT_TIMEOUT, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return project / kind


def _prefetch(settings: dict[str, object], base: str, lock: Path, tmp_path: Path) -> str:
    config = tmp_path / "prefetch.yaml"
    config.write_text(yaml.safe_dump(settings))
    option = "-r" if lock.name == "requirements.txt" else "--lock"
    command = [sys.executable, "-m", "proxy.cli", "prefetch", "--config", str(config),
               "--url", base, option, str(lock)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("kind", list(LOCKERS))
def test_a_lock_file_fills_the_cache_for_its_install(
    world: World, tmp_path: Path, kind: str
) -> None:
    with world.proxy() as maker:
        lock = _lock(kind, f"{maker}/simple/", tmp_path / "project")
    assert TINYAPP.sha256 in lock.read_text()
    settings = {**world.settings(), "cache": {"dir": str(tmp_path / "fresh")}}
    with proxy_process(settings, tmp_path) as (_, base):
        out = _prefetch(settings, base, lock, tmp_path)
        if kind != "requirements.txt":
            assert "2 locked files through the proxy, 0 failures" in out
        world.mirror.reset_log()
        got = install("pip", f"{base}/simple/", tmp_path / "install", "tinyapp")
        assert got == {"tinyapp": "1.0", "tinylib": "1.1"}
        assert world.mirror.requests == []  # pages, metadata and files all from the cache
