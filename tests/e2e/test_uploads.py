"""Uploads to a hosted group with the real clients: `twine upload` and `uv publish` to
`/upload/<group>/`, then pip installs what they uploaded. The same filename with other bytes
is a 409; no token a 401 asking for one, a wrong one a 403; a bad filename, a name that does
not match it and a digest that does not match the bytes are 400s; none of them stores
anything."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.clients import CLIENT_TIMEOUT, install, isolated_env
from support.wheels import Dist, make_wheel
from support.world import World
from uv import find_uv_bin

TOKEN = "lab-upload-token"
FIRST = make_wheel("labpkg", "1.0", requires=["tinylib"])
SECOND = make_wheel("labpkg", "1.1")


@pytest.fixture
def hosted(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PYPI_PROXY_TEST_TOKENS", f"other-token, {TOKEN}")
    upstreams = {"lab": {"kind": "hosted", "tokens_env": "PYPI_PROXY_TEST_TOKENS"},
                 "pypi": {"mirrors": [world.mirror.root_url(world.mirror_url)]}}  # fmt: skip
    routes = [{"projects": ["*"], "upstreams": ["lab", "pypi"]}]
    with world.proxy(upstreams=upstreams, routes=routes) as base:
        yield base


def _file(tmp_path: Path, dist: Dist) -> Path:
    path = tmp_path / "dist" / dist.filename
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(dist.content)
    return path


def _run(command: list[str]) -> None:
    done = subprocess.run(command, env=isolated_env(), capture_output=True, text=True,
                          timeout=CLIENT_TIMEOUT, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_twine_and_uv_publish_then_pip_installs(hosted: str, tmp_path: Path) -> None:
    url = f"{hosted}/upload/lab/"
    _run([sys.executable, "-m", "twine", "upload", "--non-interactive", "--repository-url", url,
          "-u", "__token__", "-p", TOKEN, str(_file(tmp_path, FIRST))])  # fmt: skip
    _run([find_uv_bin(), "publish", "--publish-url", url, "--token", TOKEN,
          str(_file(tmp_path, SECOND))])  # fmt: skip
    got = install("pip", f"{hosted}/simple/", tmp_path / "pip", "labpkg==1.0")
    assert got == {"labpkg": "1.0", "tinylib": "1.1"}  # its dependency from the mirror
    assert install("uv", f"{hosted}/simple/", tmp_path / "uv", "labpkg")["labpkg"] == "1.1"


def _post(base: str, dist: Dist, token: str | None = TOKEN, **fields: str) -> httpx.Response:
    sha256 = hashlib.sha256(dist.content).hexdigest()
    form = {":action": "file_upload", "protocol_version": "1", "name": "labpkg",
            "version": "1.0", "sha256_digest": sha256, **fields}  # fmt: skip
    auth = ("__token__", token) if token else None
    files = {"content": (dist.filename, dist.content, "application/octet-stream")}
    return httpx.post(f"{base}/upload/lab/", data=form, files=files, auth=auth, timeout=30)


def test_what_is_refused_and_that_nothing_of_it_is_stored(
    hosted: str, world: World, tmp_path: Path
) -> None:
    assert _post(hosted, FIRST).status_code == 200
    assert _post(hosted, FIRST).status_code == 200  # the same bytes again: done already
    other = make_wheel("labpkg", "1.0", payload_size=999)
    refused = {
        "other bytes": (_post(hosted, other), 409),
        "no token": (_post(hosted, SECOND, token=None, version="1.1"), 401),
        "wrong token": (_post(hosted, SECOND, token="guess", version="1.1"), 403),
        "name": (_post(hosted, SECOND, name="labpkg", version="1.0"), 400),
        "digest": (_post(hosted, SECOND, version="1.1", sha256_digest="00" * 32), 400),
        "filename": (_post(hosted, Dist("labpkg.exe", b"MZ", b"")), 400),
    }
    for what, (answer, status) in refused.items():
        assert answer.status_code == status, (what, answer.text)
    assert refused["no token"][0].headers["www-authenticate"].startswith("Basic")
    page = httpx.get(
        f"{hosted}/simple/labpkg/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert [(f["filename"], f["hashes"]["sha256"]) for f in page.json()["files"]] == [
        (FIRST.filename, FIRST.sha256)]  # fmt: skip
    folder = world.cache_dir / "hosted" / "lab"
    assert sorted(p.name for p in folder.iterdir()) == [FIRST.filename]  # no scratch left
    # Uploads are not the cache's to evict: pruning it all leaves them.
    prune = [sys.executable, "-m", "proxy.cli", "cache", "--cache-dir", str(world.cache_dir),
             "prune", "--max-size", "0"]  # fmt: skip
    _run(prune)
    assert (folder / FIRST.filename).read_bytes() == FIRST.content
