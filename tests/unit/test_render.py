"""Rendering and content negotiation: what pip, uv and Poetry send, and what they accept."""

from __future__ import annotations

import dataclasses
import json

import pytest
from packaging.version import Version
from support.repo import OFFICIAL_INDEX

from proxy.core.model import FileLink, NormalizedName, ProjectPage, ProjectStatus
from proxy.core.parse import parse_project_list, parse_project_page
from proxy.core.render import (
    Format,
    for_client,
    negotiate,
    render_project,
    render_project_list,
    versions,
)

PIP = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
POETRY = "application/vnd.pypi.simple.v1+json, */*;q=0.1"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PIP, Format.JSON),
        (UV, Format.JSON),
        (POETRY, Format.JSON),
        (None, Format.TEXT_HTML),
        ("", Format.TEXT_HTML),
        ("*/*", Format.TEXT_HTML),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", Format.TEXT_HTML),
        ("application/vnd.pypi.simple.v1+html", Format.HTML),
        ("application/vnd.pypi.simple.latest+json", Format.JSON),
        ("application/vnd.pypi.simple.v1+json;q=0.5, text/html", Format.TEXT_HTML),
        ("application/vnd.pypi.simple.v1+json;q=0, */*", Format.TEXT_HTML),
        ("text/*", Format.TEXT_HTML),
        ("application/json", None),
        ("application/vnd.pypi.simple.v2+json", None),
        ("text/html;q=0", None),
        ("text/html;q=bogus", None),
    ],
)
def test_negotiation(accept: str | None, expected: Format | None) -> None:
    assert negotiate(accept) is expected


NAME = NormalizedName("demo")
PAGE = ProjectPage(
    name=NAME,
    files=(
        FileLink(
            "demo-1.0.tar.gz",
            "https://up.test/demo-1.0.tar.gz",
            sha256="a" * 64,
            requires_python=">=3.8,<4",
            size=12,
            upload_time="2024-01-01T00:00:00Z",
        ),
        FileLink(
            "demo-2.0+cu121-py3-none-any.whl",
            "https://up.test/demo-2.0%2Bcu121-py3-none-any.whl",
            sha256="b" * 64,
            yanked="bad <build>",
            metadata_sha256="c" * 64,
        ),
        FileLink(
            "demo-1.5-py3-none-any.whl", "https://up.test/x.whl", yanked=True, metadata_sha256=""
        ),
    ),
)
PAGE_URL = "http://proxy.test:3141/simple/demo/"


def _proxied(link: FileLink) -> FileLink:
    """What a client should see: the same file, at the proxy."""
    return dataclasses.replace(link, url=f"http://proxy.test:3141/files/demo/{link.filename}")


@pytest.mark.parametrize("fmt", list(Format))
def test_rendered_pages_parse_back_to_the_same_files_at_the_proxy(fmt: Format) -> None:
    rendered = render_project(PAGE, fmt)
    assert rendered.media_type.split(";")[0] == fmt.value
    back = parse_project_page(NAME, rendered.body, PAGE_URL)
    expected = [_proxied(f) for f in PAGE.files]
    if fmt is not Format.JSON:  # HTML cannot carry these
        expected = [dataclasses.replace(f, size=None, upload_time=None) for f in expected]
    assert [dataclasses.replace(f, url=f.url.replace("%2B", "+")) for f in back.files] == expected


def test_html_escapes_and_always_gives_yanked_a_value() -> None:
    body = render_project(PAGE, Format.HTML).body.decode()
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in body
    assert 'data-yanked="bad &lt;build&gt;"' in body
    assert 'data-yanked=""' in body
    assert "data-yanked>" not in body and "data-yanked " not in body
    assert 'data-core-metadata="sha256=' + "c" * 64 + '"' in body
    assert 'data-core-metadata="true"' in body
    assert "up.test" not in body
    assert 'href="../../files/demo/demo-2.0%2Bcu121-py3-none-any.whl#sha256=' in body


def test_json_is_api_1_1_with_versions_and_no_upstream_urls() -> None:
    doc = json.loads(render_project(PAGE, Format.JSON).body)
    assert doc["meta"] == {"api-version": "1.4"}
    assert doc["name"] == "demo"
    assert doc["versions"] == ["1.0", "1.5", "2.0+cu121"]
    first, second, third = doc["files"]
    assert first == {
        "filename": "demo-1.0.tar.gz",
        "url": "../../files/demo/demo-1.0.tar.gz",
        "hashes": {"sha256": "a" * 64},
        "requires-python": ">=3.8,<4",
        "yanked": False,
        "size": 12,
        "upload-time": "2024-01-01T00:00:00Z",
    }
    assert second["yanked"] == "bad <build>"
    assert second["core-metadata"] == second["dist-info-metadata"] == {"sha256": "c" * 64}
    assert third["core-metadata"] is True and third["hashes"] == {}


def test_etag_is_strong_and_follows_the_content() -> None:
    one = render_project(PAGE, Format.JSON)
    assert one.etag.startswith('"') and one == render_project(PAGE, Format.JSON)
    other = render_project(dataclasses.replace(PAGE, files=PAGE.files[:1]), Format.JSON)
    assert other.etag != one.etag


def test_project_list_round_trip() -> None:
    names = {NormalizedName(n) for n in ["torch", "numpy", "zope-interface"]}
    for fmt in Format:
        assert parse_project_list(render_project_list(names, fmt).body) == names


def test_versions_of_a_recorded_page() -> None:
    fixture = OFFICIAL_INDEX / "requests.json"
    recorded = json.loads(fixture.read_bytes())
    page = parse_project_page(NormalizedName("requests"), fixture.read_bytes(), PAGE_URL)
    ours = versions(page)
    assert ours == sorted(ours, key=Version)
    # The official index also lists releases that have no files left; those cannot be derived.
    assert set(ours) <= set(recorded["versions"])
    filenames = " ".join(f.filename for f in page.files)
    for missing in set(recorded["versions"]) - set(ours):
        assert f"-{missing}-" not in filenames and f"-{missing}." not in filenames


def test_metadata_is_offered_only_for_wheels() -> None:
    sdist = FileLink("demo-1.0.tar.gz", "https://up.test/demo-1.0.tar.gz", metadata_sha256="c" * 64)
    page = ProjectPage(NAME, (sdist,))
    assert b"metadata" not in render_project(page, Format.HTML).body
    assert b"metadata" not in render_project(page, Format.JSON).body


def test_project_status_tracks_and_provenance_are_passed_on() -> None:
    link = FileLink("demo-1.0.tar.gz", "https://m.test/demo-1.0.tar.gz",
                    provenance="https://m.test/integrity/demo-1.0.tar.gz/provenance")  # fmt: skip
    page = ProjectPage(
        NAME,
        (link,),
        status=ProjectStatus("deprecated", "use other"),
        tracks=("https://up.test/simple/demo/",),
        alternate_locations=("https://alt.test/simple/demo/",),
    )
    here = "http://10.0.0.5:3141/cpu/simple/demo/"
    provenance = "http://10.0.0.5:3141/cpu/files/demo/demo-1.0.tar.gz.provenance"
    doc = json.loads(for_client(render_project(page, Format.JSON), here).body)
    assert doc["meta"]["tracks"] == ["https://up.test/simple/demo/"]
    assert doc["project-status"] == {"status": "deprecated", "reason": "use other"}
    assert doc["alternate-locations"] == ["https://alt.test/simple/demo/"]
    assert doc["files"][0]["provenance"] == provenance
    html = for_client(render_project(page, Format.HTML), here).body.decode()
    assert f'data-provenance="{provenance}"' in html
    back = parse_project_page(NAME, html.encode(), here)
    assert (back.status, back.tracks, back.alternate_locations) == (
        page.status,
        page.tracks,
        page.alternate_locations,
    )


def test_the_absolute_links_are_for_the_host_used_and_escaped() -> None:
    link = FileLink("demo-1.0.tar.gz", "https://m.test/x", provenance="https://m.test/p")
    rendered = render_project(ProjectPage(NAME, (link,)), Format.JSON)
    one = for_client(rendered, "http://a.lan:3141/simple/demo/")
    other = for_client(rendered, 'http://b"x.lan/simple/demo/')
    assert json.loads(one.body)["files"][0]["provenance"].startswith("http://a.lan:3141/files/")
    assert json.loads(other.body)["files"][0]["provenance"].startswith('http://b"x.lan/files/')
    assert one.etag != other.etag != rendered.etag
    plain = render_project(
        ProjectPage(NAME, (FileLink("demo-1.0.tar.gz", "https://m.test/x"),)), Format.JSON
    )
    assert for_client(plain, "http://a.lan/simple/demo/") is plain
