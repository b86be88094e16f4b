"""Advisory files on disk, watched: a change is taken once it has settled, one bad document
neither drops the others nor stops later changes, and a path that breaks keeps what was
loaded."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from packaging.version import Version

from proxy.core.model import NormalizedName
from proxy.server.advisory_files import AdvisoryFiles, AdvisoryLoadError

pytestmark = pytest.mark.anyio
NAME = NormalizedName("demo")


def malware(id: str, version: str) -> str:
    affected = {"package": {"ecosystem": "PyPI", "name": "demo"}, "versions": [version]}
    return json.dumps({"id": id, "affected": [affected]})


def named(files: AdvisoryFiles, path: Path, version: str) -> list[str]:
    return [a.id for a in files.index(path).affecting(NAME, Version(version))]


async def settled(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not condition():
            await anyio.sleep(0.02)


async def test_a_bad_document_neither_drops_the_others_nor_stops_later_changes(
    tmp_path: Path,
) -> None:
    (tmp_path / "MAL-1.json").write_text(malware("MAL-1", "1.0"))
    (tmp_path / "notes.json").write_text("{not an advisory")
    files = AdvisoryFiles({tmp_path}, interval=0.05)
    await files.start()
    try:
        assert named(files, tmp_path, "1.0") == ["MAL-1"]
        (tmp_path / "MAL-2.json").write_text(malware("MAL-2", "2.0"))
        await settled(lambda: named(files, tmp_path, "2.0") == ["MAL-2"])
        assert files.counts() == {str(tmp_path): 2}
    finally:
        await files.aclose()


async def test_a_path_that_breaks_keeps_what_was_loaded(tmp_path: Path) -> None:
    path = tmp_path / "osv.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("MAL-1.json", malware("MAL-1", "1.0"))
    files = AdvisoryFiles({path}, interval=0.05)
    await files.start()
    try:
        path.write_bytes(b"PK\x03\x04 not a zip after all")
        await anyio.sleep(0.3)  # several looks: each fails, none takes the loaded set away
        assert named(files, path, "1.0") == ["MAL-1"]
        with zipfile.ZipFile(path, "w") as archive:  # and it is watched still
            archive.writestr("MAL-3.json", malware("MAL-3", "1.0"))
        await settled(lambda: named(files, path, "1.0") == ["MAL-3"])
    finally:
        await files.aclose()


async def test_a_path_that_cannot_be_read_at_start_says_which(tmp_path: Path) -> None:
    broken = tmp_path / "osv.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(AdvisoryLoadError, match=r"policy.advisories: .*osv.zip"):
        await AdvisoryFiles({broken}).start()
