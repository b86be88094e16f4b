"""What `pypi-proxy check` makes of what it measured: the ranking, the sample file, the table."""

from __future__ import annotations

from typing import Any

from packaging.version import Version
from support.tables import cells

from proxy.commands.check_report import (
    COLUMNS,
    Measurement,
    assess,
    newest_version,
    pick_sample,
    render,
)
from proxy.core.model import FileLink, NormalizedName, ProjectPage

ALPHA, BETA, TORCH = NormalizedName("alpha"), NormalizedName("beta"), NormalizedName("torch")


def _m(mirror: str, **fields: Any) -> Measurement:
    fields.setdefault("reachable", True)
    versions = fields.pop("versions", {})
    fields["versions"] = {NormalizedName(p): v and Version(v) for p, v in versions.items()}
    return Measurement(mirror=mirror, **fields)


def _page(name: str, *filenames: str, size: int | None = None) -> ProjectPage:
    links = tuple(FileLink(f, f"https://m.test/files/{f}", size=size) for f in filenames)
    return ProjectPage(NormalizedName(name), links)


def test_reachable_then_fresh_then_throughput_then_latency_then_config_order() -> None:
    both = {"alpha": "2.0", "beta": "1.0"}
    measurements = [
        _m("down", reachable=False, error="ConnectError"),
        _m("stale-fast", versions={"alpha": "1.0", "beta": "1.0"}, throughput=9e7, latency=0.01),
        _m("fresh-slow", versions=both, throughput=1e5, latency=0.5),
        _m("fresh-fast-far", versions=both, throughput=5e7, latency=0.3),
        _m("fresh-fast-near", versions=both, throughput=5e7, latency=0.1),
        _m("fresh-no-file", versions=both, latency=0.001, note="sample file: HTTP 404"),
        _m("missing-beta", versions={"alpha": "2.0", "beta": None}, throughput=9e7),
        _m("twice-behind", versions={"alpha": "1.0", "beta": None}, throughput=9e7),
        _m("down-too", reachable=False, error="HTTP 503"),
    ]
    report = assess("pypi", measurements, (ALPHA, BETA))
    assert [r.measurement.mirror for r in report.rows] == [
        "fresh-fast-near", "fresh-fast-far", "fresh-slow", "fresh-no-file",
        "stale-fast", "missing-beta", "twice-behind", "down", "down-too",
    ]  # fmt: skip
    assert [r.rank for r in report.rows] == list(range(1, 10))
    assert report.newest == {ALPHA: Version("2.0"), BETA: Version("1.0")}
    behind = {r.measurement.mirror: r.behind for r in report.rows}
    assert behind["stale-fast"] == ("alpha 1.0 < 2.0",)
    assert behind["twice-behind"] == ("alpha 1.0 < 2.0", "beta missing")
    assert behind["down"] == () and behind["fresh-slow"] == ()
    assert report.reachable


def test_unreachable_mirrors_set_no_standard_and_a_failed_page_is_behind() -> None:
    measurements = [
        # Lists a newer alpha, but did not answer: it cannot make the others look stale.
        _m("down", reachable=False, versions={"alpha": "9.0"}, error="ReadTimeout"),
        _m("flaky", versions={"alpha": "2.0"}, failed={BETA: "HTTP 502"}),
        _m("ok", versions={"alpha": "2.0", "beta": "0.1", "torch": None}),
    ]
    report = assess("pypi", measurements, (ALPHA, BETA, TORCH))
    assert report.newest == {ALPHA: Version("2.0"), BETA: Version("0.1")}
    assert [(r.measurement.mirror, r.behind) for r in report.rows] == [
        ("ok", ()),
        ("flaky", ("beta: HTTP 502",)),
        ("down", ()),
    ]
    assert not assess("x", [_m("a", reachable=False), _m("b", reachable=False)], ()).reachable


def test_the_table_is_aligned_ascii_with_one_row_per_mirror() -> None:
    measurements = [
        _m("https://far.test/simple/", versions={"alpha": "2.0"}, throughput=2.5e6, latency=0.25),
        _m("https://near.test/pypi/simple/", versions={"alpha": "1.0"}, throughput=4e4),
        _m(
            "https://me:pw@x.test/simple/",
            reachable=False,
            error="ConnectError: Verbindung abgelehnt ü",
        ),
    ]
    text = render(assess("pypi", measurements, (ALPHA, TORCH), "alpha-1.0-py3-none-any.whl"))
    text.encode("ascii")  # a Windows console shows it as it is
    header, *lines = text.splitlines()
    assert header == (
        "pypi: 3 mirror(s); newest of the samples: alpha 2.0; on no mirror: torch; "
        "throughput on alpha-1.0-py3-none-any.whl"
    )
    assert cells(lines[0]) == list(COLUMNS)
    assert [cells(line) for line in lines[1:]] == [
        ["1", "https://far.test/simple/", "yes", "250 ms", "2.5 MB/s", "fresh"],
        ["2", "https://near.test/pypi/simple/", "yes", "-", "40.0 kB/s", "behind 1/1",
         "alpha 1.0 < 2.0"],
        ["3", "https://me:***@x.test/simple/", "no", "-", "-", "-",
         "ConnectError: Verbindung abgelehnt ?"],
    ]  # fmt: skip
    # Aligned: every column starts where its header does (left) or ends where it does (right).
    for column in ("mirror", "reachable", "freshness", "note"):
        start = lines[0].index(column)
        edges = [line[start - 2 : start + 1] for line in lines[1:] if len(line) > start]
        assert len(edges) >= 2 and all(c[:2] == "  " and c[2] != " " for c in edges), column
    for column in ("latency", "throughput"):
        end = lines[0].index(column) + len(column)
        assert all(line[end - 1] != " " and line[end : end + 2] == "  " for line in lines[1:])


def test_no_sample_on_any_mirror_leaves_freshness_open() -> None:
    report = assess("pytorch", [_m("https://t.test/whl/", versions={"pip": None})], (TORCH,))
    text = render(report)
    assert "newest of the samples: none; on no mirror: torch; no sample file" in text
    assert cells(text.splitlines()[2])[2:] == ["yes", "-", "-", "-"]


def test_the_sample_file_is_one_most_mirrors_list_and_big_enough() -> None:
    projects = (ALPHA, BETA)
    old, new = "alpha-1.0-py3-none-any.whl", "alpha-2.0-py3-none-any.whl"
    sdist = "alpha-2.0.tar.gz"
    # The newest wheel of the first project, when every mirror has it.
    everywhere = {ALPHA: _page("alpha", old, new, sdist), BETA: _page("beta", "beta-1.0.tar.gz")}
    assert pick_sample([everywhere, everywhere], projects, 1000) == new
    # A stale mirror lacks it: the file all of them list wins, so the numbers compare.
    stale = {ALPHA: _page("alpha", old), BETA: None}
    assert pick_sample([everywhere, stale, everywhere], projects, 1000) == old
    # Known sizes: a file of at least `enough` bytes beats a tiny one of an earlier project;
    # beyond `enough`, size no longer matters.
    tiny = {ALPHA: _page("alpha", old, size=10), BETA: _page("beta", "beta-1.0.tar.gz", size=5000)}
    assert pick_sample([tiny], projects, 1000) == "beta-1.0.tar.gz"
    big = {ALPHA: _page("alpha", old, size=9000), BETA: _page("beta", "beta-1.0.tar.gz", size=5000)}
    assert pick_sample([big], projects, 1000) == old
    # Files of other projects on a page, or unparseable names, are not samples.
    odd = {ALPHA: _page("alpha", "beta-3.0.tar.gz", "README.txt")}
    assert pick_sample([odd], projects, 1000) is None
    assert pick_sample([], projects, 1000) is None


def test_newest_version_compares_versions_not_strings() -> None:
    page = _page("torch", "torch-2.10.0-py3-none-any.whl", "torch-2.9.1+cu121-py3-none-any.whl",
                 "torch-2.11.0rc1.tar.gz", "torchvision-9.0-py3-none-any.whl")  # fmt: skip
    assert newest_version(page) == Version("2.11.0rc1")
    assert newest_version(_page("torch")) is None
    assert newest_version(None) is None
