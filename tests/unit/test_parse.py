"""Parsing upstream pages: recorded pages of the official index, and the quirks of mirrors and
of the PyTorch index, compared as whole objects."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time

import pytest
from support.repo import OFFICIAL_INDEX

from proxy.core.model import FileLink, NormalizedName, ProjectPage, ProjectStatus
from proxy.core.parse import ParseError, parse_flat_listing, parse_project_list, parse_project_page

FIXTURES = OFFICIAL_INDEX
MIRROR = "https://mirror.test/simple/"


def _recorded(project: str, kind: str) -> bytes:
    return (FIXTURES / f"{project}.{kind}").read_bytes()


@pytest.mark.parametrize("project", ["attrs", "requests", "torch", "numpy"])
def test_html_and_json_of_a_recorded_page_parse_to_the_same_files(project: str) -> None:
    url = f"{MIRROR}{project}/"
    from_json = parse_project_page(NormalizedName(project), _recorded(project, "json"), url)
    from_html = parse_project_page(NormalizedName(project), _recorded(project, "html"), url)

    # The two recordings list files in different orders. HTML cannot carry size and
    # upload-time (PEP 700); everything else must agree.
    def by_name(links: tuple[FileLink, ...]) -> list[FileLink]:
        return sorted(links, key=lambda f: f.filename)

    assert by_name(from_html.files) == by_name(
        tuple(dataclasses.replace(f, size=None, upload_time=None) for f in from_json.files)
    )
    recorded = json.loads(_recorded(project, "json"))["files"]
    assert [f.filename for f in from_json.files] == [f["filename"] for f in recorded]
    assert [f.sha256 for f in from_json.files] == [f["hashes"]["sha256"] for f in recorded]
    assert [f.size for f in from_json.files] == [f["size"] for f in recorded]
    assert all(f.url.startswith("https://mirror.test/packages/") for f in from_json.files)


def test_numpy_keeps_its_yanked_files_and_reasons() -> None:
    page = parse_project_page(NormalizedName("numpy"), _recorded("numpy", "html"), MIRROR)
    yanked = [f for f in page.files if f.yanked]
    assert len(page.files) == 4415
    assert len(yanked) == 72
    assert {f.yanked for f in yanked} == {"Backward compatibility bug"}
    first = page.file("numpy-1.0.1.dev3460.win32-py2.4.exe")
    assert first is not None and first.requires_python is None and first.yanked is False


def test_requires_python_is_unescaped() -> None:
    page = parse_project_page(NormalizedName("requests"), _recorded("requests", "html"), MIRROR)
    assert {f.requires_python for f in page.files} >= {
        ">=3.8",
        ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*, !=3.4.*",
    }


def test_mirror_style_relative_links_resolve_against_the_final_url() -> None:
    body = (
        b'<a href="../../packages/ab/cd/ef/demo-1.0-py3-none-any.whl#sha256='
        + b"a" * 64
        + b'" data-requires-python="&gt;=3.8" data-yanked="" '
        + b'data-core-metadata="sha256='
        + b"b" * 64
        + b'">demo-1.0-py3-none-any.whl</a>'
    )
    page = parse_project_page(NormalizedName("demo"), body, "https://m.test/simple/demo/")
    assert page == ProjectPage(
        name=NormalizedName("demo"),
        files=(
            FileLink(
                filename="demo-1.0-py3-none-any.whl",
                url="https://m.test/packages/ab/cd/ef/demo-1.0-py3-none-any.whl",
                sha256="a" * 64,
                requires_python=">=3.8",
                yanked=True,
                metadata_sha256="b" * 64,
            ),
        ),
    )


def test_pytorch_style_root_relative_percent_encoded_links() -> None:
    body = (
        b"<html><body><h1>Links for torch</h1>\n"
        b'<a href="/whl/cu121/torch-2.3.1%2Bcu121-cp311-cp311-win_amd64.whl#sha256='
        + b"c"
        * 64
        + b'" data-dist-info-metadata="true">torch-2.3.1+cu121-cp311-cp311-win_amd64.whl</a><br/>\n'
        b'<a href="https://other.test/nightly/torch-2.4.0.dev1%2Bcu121-cp311-cp311-linux_x86_64.whl">'
        b"torch-2.4.0.dev1+cu121-cp311-cp311-linux_x86_64.whl</a>"
    )
    page = parse_project_page(NormalizedName("torch"), body, "https://t.test/whl/cu121/torch/")
    assert page.files == (
        FileLink(
            filename="torch-2.3.1+cu121-cp311-cp311-win_amd64.whl",
            url="https://t.test/whl/cu121/torch-2.3.1%2Bcu121-cp311-cp311-win_amd64.whl",
            sha256="c" * 64,
            metadata_sha256="",
        ),
        FileLink(
            filename="torch-2.4.0.dev1+cu121-cp311-cp311-linux_x86_64.whl",
            url="https://other.test/nightly/torch-2.4.0.dev1%2Bcu121-cp311-cp311-linux_x86_64.whl",
        ),
    )


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("", False),
        (" data-yanked", True),
        (' data-yanked=""', True),
        (' data-yanked="broken build"', "broken build"),
    ],
)
def test_html_yanked_forms(attribute: str, expected: object) -> None:
    body = f'<a href="x-1.0.tar.gz"{attribute}>x-1.0.tar.gz</a>'.encode()
    page = parse_project_page(NormalizedName("x"), body, "https://m.test/simple/x/")
    assert page.files[0].yanked == expected


def test_json_served_as_octet_stream_is_sniffed_and_other_hashes_are_dropped() -> None:
    body = json.dumps(
        {
            "meta": {"api-version": "1.1"},
            "name": "x",
            "files": [
                {
                    "filename": "x-1.0.tar.gz",
                    "url": "../../packages/x-1.0.tar.gz",
                    "hashes": {"md5": "0" * 32},
                    "yanked": True,
                    "core-metadata": False,
                },
                {
                    "filename": "x-1.1-py3-none-any.whl",
                    "url": "https://files.test/x-1.1-py3-none-any.whl",
                    "hashes": {"sha256": "D" * 64},
                    "yanked": "",
                    "dist-info-metadata": {"sha256": "e" * 64},
                    "size": 10,
                    "upload-time": "2024-01-01T00:00:00Z",
                },
            ],
        }
    ).encode()
    page = parse_project_page(NormalizedName("x"), b"\n  " + body, "https://m.test/simple/x/")
    assert page.files == (
        FileLink("x-1.0.tar.gz", "https://m.test/packages/x-1.0.tar.gz", yanked=True),
        FileLink(
            "x-1.1-py3-none-any.whl",
            "https://files.test/x-1.1-py3-none-any.whl",
            sha256="d" * 64,
            yanked=True,
            size=10,
            upload_time="2024-01-01T00:00:00Z",
            metadata_sha256="e" * 64,
        ),
    )


def test_links_that_are_not_files_are_ignored_and_duplicates_keep_the_first() -> None:
    body = (
        b'<base href="https://files.test/dl/">'
        b'<a href="a-1.0.tar.gz#sha256=' + b"1" * 64 + b'">a</a>'
        b'<a href="other/a-1.0.tar.gz">dup</a>'
        b'<a href="https://files.test/dl/">dir</a><a>no href</a>'
        b'<a href="..%2F..%2Fetc%2Fpasswd">evil</a>'
    )
    page = parse_project_page(NormalizedName("a"), body, "https://m.test/simple/a/")
    assert [(f.filename, f.url) for f in page.files] == [
        ("a-1.0.tar.gz", "https://files.test/dl/a-1.0.tar.gz")
    ]


def test_garbage_json_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_project_page(NormalizedName("x"), b"{not json", "https://m.test/simple/x/")
    with pytest.raises(ParseError):
        parse_project_page(NormalizedName("x"), b'{"files": 3}', "https://m.test/simple/x/")


def test_project_lists_in_html_and_json() -> None:
    html = b'<a href="/simple/foo-bar/">Foo.Bar</a>\n<a href="torch/">torch</a><a href="x/">!!</a>'
    assert parse_project_list(html) == {"foo-bar", "torch"}
    body = json.dumps({"meta": {}, "projects": [{"name": "Zope.Interface"}, {"name": 3}]})
    assert parse_project_list(body.encode()) == {"zope-interface"}


def test_parse_flat_listing() -> None:
    body = (
        b'<a href="a/torch-2.3.1%2Bcu121-cp311-cp311-linux_x86_64.whl#sha256='
        + b"1" * 64
        + b'">t</a>'
        b'<a href="b/Torch_Vision-0.18.1-cp311-cp311-linux_x86_64.whl">tv</a>'
        b'<a href="c/numpy-2.0.0.tar.gz">np</a><a href="README.html">readme</a>'
    )
    pages = parse_flat_listing(body, "https://m.test/whl/torch_stable.html")
    assert set(pages) == {"torch", "torch-vision", "numpy"}
    (torch,) = pages[NormalizedName("torch")].files
    assert torch.url == "https://m.test/whl/a/torch-2.3.1%2Bcu121-cp311-cp311-linux_x86_64.whl"
    assert torch.sha256 == "1" * 64


def test_entries_with_a_field_of_the_wrong_type_are_dropped_one_by_one() -> None:
    good = {"filename": "demo-1.0.tar.gz", "url": "demo-1.0.tar.gz", "hashes": {}}
    bad = [
        {"url": "demo-0.1.tar.gz", "hashes": "sha256=ab"},
        {"url": "demo-0.2.tar.gz", "size": "12"},
        {"url": "demo-0.3.tar.gz", "yanked": 3},
        {"url": "demo-0.4.tar.gz", "requires-python": [">=3"]},
        {"url": "demo-0.5.tar.gz", "upload-time": 1700000000},
        {"url": "demo-0.6.tar.gz", "filename": 7},
        {"url": 42},
        "demo-0.7.tar.gz",
    ]
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": [*bad, good]}).encode()
    page = parse_project_page(NormalizedName("demo"), body, MIRROR)
    assert [f.filename for f in page.files] == ["demo-1.0.tar.gz"]


def test_a_page_with_neither_files_nor_a_repository_version_is_no_index_page() -> None:
    login = b"<html><body><form><input name=user></form><a href='/help'>Help</a></body></html>"
    with pytest.raises(ParseError, match="not an index page"):
        parse_project_page(NormalizedName("demo"), login, MIRROR)
    empty = b'<html><head><meta name="pypi:repository-version" content="1.0"></head></html>'
    assert parse_project_page(NormalizedName("demo"), empty, MIRROR).files == ()


@pytest.mark.parametrize(
    "hostile",
    ["<a " * 50_000, "<!--" * 50_000, '<a x="' * 50_000, "<a\t" + " " * 500_000 + "="],
    ids=["unclosed tags", "unclosed comments", "unclosed quotes", "whitespace"],
)
def test_parsing_html_takes_time_linear_in_its_length(hostile: str) -> None:
    """CPython's HTMLParser needs about a minute for 60 KB of unclosed `<a ` (CVE-2025-6069);
    the bound here is a hundred times what the linear scan needs on a slow machine."""
    started = time.perf_counter()
    with contextlib.suppress(ParseError):
        parse_project_page(NormalizedName("demo"), hostile.encode(), MIRROR)
    assert time.perf_counter() - started < 3


def test_tags_in_comments_are_not_links_and_attributes_unescape() -> None:
    body = (
        b'<!-- <a href="demo-0.1.tar.gz">old</a> -->'
        b"<a href='demo-1.0.tar.gz#sha256=" + b"ab" * 32 + b"' data-requires-python='&gt;=3.8'"
        b' data-yanked>demo</a><a HREF=demo-1.1.tar.gz DATA-YANKED="bad build">x</a>'
    )
    page = parse_project_page(NormalizedName("demo"), body, MIRROR)
    assert page.files == (
        FileLink("demo-1.0.tar.gz", MIRROR + "demo-1.0.tar.gz", "ab" * 32, ">=3.8", True),
        FileLink("demo-1.1.tar.gz", MIRROR + "demo-1.1.tar.gz", yanked="bad build"),
    )


NEW_FIELDS_JSON = {
    "meta": {"api-version": "1.4", "tracks": ["https://upstream.test/simple/demo/"]},
    "name": "demo",
    "project-status": {"status": "quarantined", "reason": "under review"},
    "alternate-locations": ["https://other.test/simple/demo/", 5],
    "files": [
        {"filename": "demo-1.0.tar.gz", "url": "demo-1.0.tar.gz", "hashes": {},
         "provenance": "../../integrity/demo/1.0/demo-1.0.tar.gz/provenance"},
    ],
}  # fmt: skip
NEW_FIELDS_HTML = b"""<html><head>
<meta name="pypi:repository-version" content="1.4">
<meta name="pypi:project-status" content="quarantined">
<meta name="pypi:project-status-reason" content="under review">
<meta name="pypi:tracks" content="https://upstream.test/simple/demo/">
<meta name="pypi:alternate-locations" content="https://other.test/simple/demo/">
</head><body><a href="demo-1.0.tar.gz"
data-provenance="https://mirror.test/integrity/demo/1.0/demo-1.0.tar.gz/provenance">x</a>
</body></html>"""


@pytest.mark.parametrize("body", [json.dumps(NEW_FIELDS_JSON).encode(), NEW_FIELDS_HTML])
def test_project_status_tracks_alternate_locations_and_provenance(body: bytes) -> None:
    page = parse_project_page(NormalizedName("demo"), body, f"{MIRROR}demo/")
    assert page.status == ProjectStatus("quarantined", "under review")
    assert page.tracks == ("https://upstream.test/simple/demo/",)
    assert page.alternate_locations == ("https://other.test/simple/demo/",)
    provenance = "https://mirror.test/integrity/demo/1.0/demo-1.0.tar.gz/provenance"
    assert [f.provenance for f in page.files] == [provenance]


def test_links_that_are_not_http_are_dropped() -> None:
    entries = [
        {"filename": "demo-0.1.tar.gz", "url": "file:///etc/passwd"},
        {"filename": "demo-0.2.tar.gz", "url": "ftp://m.test/demo-0.2.tar.gz"},
        {"filename": "demo-1.0.tar.gz", "url": "demo-1.0.tar.gz"},
    ]
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": entries}).encode()
    html = b'<a href="file:///etc/demo-0.1.tar.gz">x</a><a href="demo-1.0.tar.gz">y</a>'
    for page in (body, html):
        parsed = parse_project_page(NormalizedName("demo"), page, MIRROR)
        assert [f.filename for f in parsed.files] == ["demo-1.0.tar.gz"]


def test_a_malformed_url_or_upload_time_costs_its_entry_or_field_alone() -> None:
    entries = [
        {"filename": "demo-0.1.tar.gz", "url": "http://[::1/demo-0.1.tar.gz"},
        {"filename": "demo-1.0.tar.gz", "url": "demo-1.0.tar.gz", "upload-time": "yesterday"},
        {"filename": "demo-1.1.tar.gz", "url": "demo-1.1.tar.gz",
         "upload-time": "2026-11-01T00:00:00.000000Z"},
    ]  # fmt: skip
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": entries}).encode()
    page = parse_project_page(NormalizedName("demo"), body, MIRROR)
    assert [(f.filename, f.upload_time) for f in page.files] == [
        ("demo-1.0.tar.gz", None),
        ("demo-1.1.tar.gz", "2026-11-01T00:00:00.000000Z"),
    ]
    html = b'<a href="http://[::1/demo-0.1.tar.gz">x</a><a href="demo-1.0.tar.gz">y</a>'
    assert [f.filename for f in parse_project_page(NormalizedName("demo"), html, MIRROR).files] == [
        "demo-1.0.tar.gz"
    ]
