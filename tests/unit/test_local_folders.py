"""A local folder answered as a simple index by its httpx transport: pages from the files
there (each hashed once, again when it changes), files with Range, nothing outside it, and
no page from the network that could lead to a local path."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from support.wheels import make_wheel

from proxy.core.config_yaml import parse_config
from proxy.core.local_folders import LocalFile, local_url
from proxy.core.parse_values import http_url
from proxy.server import local_folders

pytestmark = pytest.mark.anyio
LAB = make_wheel("labtools", "1.0", requires_python=">=3.9")


@pytest.fixture
async def folder(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str, Path]]:
    lab = tmp_path / "wheels"
    lab.mkdir()
    (lab / LAB.filename).write_bytes(LAB.content)
    (lab / "notes.txt").write_text("not a distribution")
    (tmp_path / "secret-1.0.tar.gz").write_text("outside the folder")
    root = local_url(lab)
    transport = local_folders.LocalFolders({root: lab})
    mounts: dict[str, httpx.AsyncBaseTransport] = {"local://": transport}
    async with httpx.AsyncClient(mounts=mounts) as client:
        yield client, root, lab


async def test_a_folder_is_an_index_of_its_distributions(
    folder: tuple[httpx.AsyncClient, str, Path],
) -> None:
    client, root, _ = folder
    assert json.loads((await client.get(root)).content)["projects"] == [{"name": "labtools"}]
    page = (await client.get(f"{root}LabTools/")).json()
    assert page["files"] == [{"filename": LAB.filename, "url": root + LAB.filename,
                              "hashes": {"sha256": LAB.sha256}, "size": LAB.size,
                              "requires-python": ">=3.9"}]  # fmt: skip
    assert (await client.get(f"{root}nothing/")).status_code == 404
    whole = await client.get(root + LAB.filename)
    assert whole.status_code == 200 and whole.content == LAB.content
    part = await client.get(root + LAB.filename, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == LAB.content[10:20]
    for outside in ("notes.txt", "../secret-1.0.tar.gz", "%2E%2E/secret-1.0.tar.gz"):
        assert (await client.get(root + outside)).status_code == 404, outside


async def test_a_file_is_hashed_again_only_when_it_changes(
    folder: tuple[httpx.AsyncClient, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, root, lab = folder
    hashed: list[str] = []
    described = local_folders._described

    def counted(path: Path, size: int) -> LocalFile:
        hashed.append(path.name)
        return described(path, size)

    monkeypatch.setattr(local_folders, "_described", counted)
    for _ in range(3):
        await client.get(f"{root}labtools/")
    assert hashed == [LAB.filename]
    newer = make_wheel("labtools", "1.0", payload_size=500)
    (lab / LAB.filename).write_bytes(newer.content)
    os.utime(lab / LAB.filename, ns=(1, 1))  # another modification time too
    page = (await client.get(f"{root}labtools/")).json()
    assert page["files"][0]["hashes"] == {"sha256": newer.sha256} and len(hashed) == 2


def test_only_a_local_folder_s_own_page_links_into_it() -> None:
    root = "local://folder/srv/wheels/"
    assert http_url(f"{root}labtools/", f"{root}labtools-1.0-py3-none-any.whl")
    assert http_url("https://mirror.test/simple/x/", f"{root}x-1.0.tar.gz") is None
    assert http_url("https://mirror.test/simple/x/", "file:///etc/passwd") is None


def test_the_config_names_a_folder_by_its_absolute_path(tmp_path: Path) -> None:
    mirrors = [{"path": str(tmp_path / "lab wheels"), "kind": "local"}]
    config = parse_config({"upstreams": {"lab": {"mirrors": mirrors}}})
    assert config.upstream("lab").mirrors == (f"local://folder{tmp_path}/lab%20wheels/",)
    with pytest.raises(
        ValueError, match=r"upstreams\.lab\.mirrors\[0\]\.path: expected a non-empty"
    ):
        parse_config({"upstreams": {"lab": {"mirrors": [{"kind": "local"}]}}})
