"""The older JSON API's document, from a project page."""

from __future__ import annotations

import pytest

from proxy.core.legacy_json import NoSuchVersion, legacy_json
from proxy.core.model import FileLink, NormalizedName, ProjectPage

SHA = "ab" * 32


def _link(filename: str, **more: object) -> FileLink:
    return FileLink(filename, f"https://m.test/{filename}", **{"sha256": SHA, **more})  # type: ignore[arg-type]


PAGE = ProjectPage(
    NormalizedName("demo"),
    (
        _link("demo-1.0.tar.gz", size=10, upload_time="2026-01-02T03:04:05.000000Z"),
        _link("demo-1.0-py3-none-any.whl", requires_python=">=3.9"),
        _link("demo-2.0-cp312-cp312-linux_x86_64-cu128.whl"),  # a variant wheel
        _link("demo-2.0-py3-none-any.whl", yanked="broken"),
        _link("demo-3.0rc1-py3-none-any.whl"),
        FileLink("demo-1.5-py3-none-any.whl", "https://m.test/x"),  # no hash: left out
    ),
)


def _url(link: FileLink) -> str:
    return f"http://proxy.test/files/demo/{link.filename}"


def test_a_project_s_releases_and_its_newest_usable_version() -> None:
    document = legacy_json(PAGE, None, _url)
    assert list(document["releases"]) == ["1.0", "2.0", "3.0rc1"]
    # 2.0 has a wheel that is not yanked (the variant): it counts; pre-releases do not.
    assert document["info"]["version"] == "2.0"
    sdist, wheel = document["releases"]["1.0"]
    assert sdist == {
        "filename": "demo-1.0.tar.gz", "url": "http://proxy.test/files/demo/demo-1.0.tar.gz",
        "digests": {"sha256": SHA}, "size": 10, "packagetype": "sdist",
        "python_version": "source", "requires_python": None, "yanked": False,
        "yanked_reason": None, "upload_time": "2026-01-02T03:04:05",
        "upload_time_iso_8601": "2026-01-02T03:04:05.000000Z", "has_sig": False,
    }  # fmt: skip
    assert (wheel["packagetype"], wheel["python_version"]) == ("bdist_wheel", "py3")
    variant, yanked = document["releases"]["2.0"]
    assert variant["python_version"] == "cp312"
    assert (yanked["yanked"], yanked["yanked_reason"]) == (True, "broken")


def test_one_version() -> None:
    document = legacy_json(PAGE, "1.0", _url)
    assert "releases" not in document
    assert document["info"]["version"] == "1.0"
    assert document["info"]["requires_python"] == ">=3.9"
    assert [f["filename"] for f in document["urls"]] == [
        "demo-1.0.tar.gz",
        "demo-1.0-py3-none-any.whl",
    ]
    with pytest.raises(NoSuchVersion, match=r"lists no file of version 1\.5"):
        legacy_json(PAGE, "1.5", _url)  # listed, but with no hash
    with pytest.raises(NoSuchVersion, match="not a version"):
        legacy_json(PAGE, "latest", _url)
