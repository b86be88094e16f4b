"""`pypi-proxy check`: the ranking and the table on their own, then the command against real
mirrors on 127.0.0.1 (good, slow, stale, down, failing, hanging, flat)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from packaging.version import Version
from support.process import free_port
from support.upstream import FakeUpstream
from support.wheels import make_wheel

from proxy.commands.check import (
    COLUMNS,
    Measurement,
    assess,
    newest_version,
    pick_sample,
    render,
)
from proxy.core.model import FileLink, NormalizedName, ProjectPage

COMMAND = [sys.executable, "-m", "proxy.cli", "check"]
ALPHA, BETA, TORCH = NormalizedName("alpha"), NormalizedName("beta"), NormalizedName("torch")


def _m(mirror: str, **fields: Any) -> Measurement:
    fields.setdefault("reachable", True)
    versions = fields.pop("versions", {})
    fields["versions"] = {NormalizedName(p): v and Version(v) for p, v in versions.items()}
    return Measurement(mirror=mirror, **fields)


def _page(name: str, *filenames: str, size: int | None = None) -> ProjectPage:
    links = tuple(FileLink(f, f"https://m.test/files/{f}", size=size) for f in filenames)
    return ProjectPage(NormalizedName(name), links)


# -- the pure part --------------------------------------------------------------------------------


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


def _cells(line: str) -> list[str]:
    # Columns are two spaces apart at least; a cell holds single spaces only.
    return re.split(r" {2,}", line.strip())


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
    assert _cells(lines[0]) == list(COLUMNS)
    assert [_cells(line) for line in lines[1:]] == [
        ["1", "https://far.test/simple/", "yes", "250 ms", "2.5 MB/s", "fresh"],
        ["2", "https://near.test/pypi/simple/", "yes", "-", "40.0 kB/s", "behind 1/1",
         "alpha 1.0 < 2.0"],
        ["3", "https://me:***@x.test/simple/", "no", "-", "-", "-",
         "ConnectError: Verbindung abgelehnt ?"],
    ]  # fmt: skip
    # Aligned: every column starts where its header does (left) or ends where it does (right).
    for column in ("mirror", "reachable", "freshness", "note"):
        start = lines[0].index(column)
        cells = [line[start - 2 : start + 1] for line in lines[1:] if len(line) > start]
        assert len(cells) >= 2 and all(c[:2] == "  " and c[2] != " " for c in cells), column
    for column in ("latency", "throughput"):
        end = lines[0].index(column) + len(column)
        assert all(line[end - 1] != " " and line[end : end + 2] == "  " for line in lines[1:])


def test_no_sample_on_any_mirror_leaves_freshness_open() -> None:
    report = assess("pytorch", [_m("https://t.test/whl/", versions={"pip": None})], (TORCH,))
    text = render(report)
    assert "newest of the samples: none; on no mirror: torch; no sample file" in text
    assert _cells(text.splitlines()[2])[2:] == ["yes", "-", "-", "-"]


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


# -- the command against real mirrors -------------------------------------------------------------

# The throughput sample: big enough that a drip of 0.05 s per 64 KiB chunk shows clearly.
ALPHA_OLD = make_wheel("alpha", "1.0", payload_size=1_500_000)
ALPHA_NEW = make_wheel("alpha", "2.0")
BETA_WHEEL = make_wheel("beta", "0.9")
TORCH_OLD = make_wheel("torch", "2.2.0+cu121", payload_size=300_000)
TORCH_NEW = make_wheel("torch", "2.3.1+cu121")


def _check(
    tmp_path: Path, upstreams: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "check.yaml"
    timeouts = {"connect": 2, "first_byte": 1, "stall": 5}
    config.write_text(yaml.safe_dump({"timeouts": timeouts, "upstreams": upstreams}))
    return subprocess.run(
        [*COMMAND, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _table(stdout: str, group: str) -> tuple[str, list[dict[str, str]]]:
    """The group's header line, and its rows as column -> cell."""
    block = stdout.split(f"{group}: ", 1)[1].split("\n\n", 1)[0]
    header, columns, *lines = block.splitlines()
    assert _cells(columns) == list(COLUMNS)
    return header, [dict(zip(COLUMNS, [*_cells(line), ""], strict=False)) for line in lines]


def _mb_per_s(cell: str) -> float:
    number, unit = cell.split()
    return float(number) / (1000 if unit == "kB/s" else 1)


def test_ranks_good_slow_stale_down(tmp_path: Path) -> None:
    good, slow, stale = FakeUpstream(), FakeUpstream(), FakeUpstream()
    for mirror in (good, slow, stale):
        mirror.add(ALPHA_OLD)
        mirror.add(BETA_WHEEL)
    good.add(ALPHA_NEW)
    slow.add(ALPHA_NEW)
    slow.file_faults.drip = 0.05
    down = f"http://127.0.0.1:{free_port()}/simple/"
    with good.running() as g, slow.running() as s, stale.running() as st:
        urls = {"good": good.root_url(g), "slow": slow.root_url(s), "stale": stale.root_url(st)}
        scrambled = [urls["stale"], down, urls["slow"], urls["good"]]
        result = _check(
            tmp_path,
            {"pypi": {"mirrors": scrambled}},
            *("--project", "alpha", "--project", "Beta", "--project", "torch"),
            *("--sample-bytes", "512KiB"),
        )
    assert result.returncode == 0, result.stderr
    header, rows = _table(result.stdout, "pypi")
    assert header == (
        "4 mirror(s); newest of the samples: alpha 2.0, beta 0.9; on no mirror: torch; "
        f"throughput on {ALPHA_OLD.filename}"
    )
    assert [r["mirror"] for r in rows] == [urls["good"], urls["slow"], urls["stale"], down]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["reachable"] for r in rows] == ["yes", "yes", "yes", "no"]
    assert [r["freshness"] for r in rows] == ["fresh", "fresh", "behind 1/2", "-"]
    assert rows[2]["note"] == "alpha 1.0 < 2.0"
    assert rows[3]["note"].startswith("ConnectError")
    assert rows[3]["latency"] == rows[3]["throughput"] == "-"
    assert all(re.fullmatch(r"\d+ ms", r["latency"]) for r in rows[:3])
    # 8 chunks of 64 KiB with 0.05 s between them: at most ~1.5 MB/s; loopback does far more.
    assert _mb_per_s(rows[1]["throughput"]) < 2
    assert _mb_per_s(rows[0]["throughput"]) > 3 * _mb_per_s(rows[1]["throughput"])
    # Every mirror that answered was asked for the same file, at its own URL, once, as itself.
    for mirror in (good, slow, stale):
        files = [r for r in mirror.requests if r.kind == "file"]
        assert [r.path.rsplit("/", 1)[1] for r in files] == [quote(ALPHA_OLD.filename)]
        assert all(r.headers["user-agent"].startswith("pypi-proxy/") for r in mirror.requests)
        assert mirror.count("/simple/alpha/") == mirror.count("/simple/beta/") == 1


def test_a_group_with_no_mirror_that_answers_fails_the_check(tmp_path: Path) -> None:
    index = FakeUpstream("pytorch")
    index.add(TORCH_OLD)
    index.add(TORCH_NEW)
    # A flat find-links listing, one release behind the PyTorch index.
    flat = FakeUpstream("mirror", prefix="/unused")
    flat.add_blob(f"/flat/files/{TORCH_OLD.filename}", TORCH_OLD.content)
    link = f'<a href="files/{quote(TORCH_OLD.filename)}">{TORCH_OLD.filename}</a><br>'
    flat.add_blob("/flat/torch_stable.html", link.encode())
    failing, hanging = FakeUpstream(), FakeUpstream()
    failing.page_faults.status = 503
    hanging.page_faults.hang = True
    dead = f"http://127.0.0.1:{free_port()}/simple/"
    with (
        index.running() as i,
        flat.running() as f,
        failing.running() as fa,
        hanging.running() as h,
    ):
        mirrors = [
            failing.root_url(fa),
            hanging.root_url(h),
            {"url": f"{f}/flat/torch_stable.html", "kind": "flat"},
            index.root_url(i),
        ]
        upstreams = {"pytorch": {"mirrors": mirrors}, "dead": {"mirrors": [dead]}}
        result = _check(tmp_path, upstreams, "--project", "torch", "--project", "pip")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "pypi-proxy: no mirror answers for upstream(s): dead"

    header, rows = _table(result.stdout, "pytorch")
    assert header == (
        "4 mirror(s); newest of the samples: torch 2.3.1+cu121; on no mirror: pip; "
        f"throughput on {TORCH_OLD.filename}"
    )
    assert [(r["mirror"], r["reachable"], r["freshness"]) for r in rows] == [
        (index.root_url(i), "yes", "fresh"),
        (f"{f}/flat/torch_stable.html", "yes", "behind 1/1"),
        (failing.root_url(fa), "no", "-"),
        (hanging.root_url(h), "no", "-"),
    ]
    assert rows[1]["note"] == "torch 2.2.0+cu121 < 2.3.1+cu121"
    assert rows[2]["note"] == "HTTP 503"
    assert rows[3]["note"] == "no response within 1 s"
    assert all(r["throughput"].endswith("B/s") for r in rows[:2])
    # The PyTorch index's 403 for pip is an answer (absent), not a failure.
    assert index.count("/whl/cu121/pip/") == 1
    assert flat.count("/flat/torch_stable.html") == 1  # one listing for every sample

    header, rows = _table(result.stdout, "dead")
    assert header == "1 mirror(s); none answers"
    assert [(r["mirror"], r["reachable"]) for r in rows] == [(dead, "no")]
    assert rows[0]["note"].startswith("ConnectError")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "not a name"], "not a valid project name"),
        (["--sample-bytes", "lots"], "expected a size"),
        (["--sample-time", "0"], "expected a duration"),
        (["--timeout", "soon"], "expected a duration"),
    ],
)
def test_bad_arguments_stop_before_probing(tmp_path: Path, args: list[str], message: str) -> None:
    result = _check(tmp_path, {"pypi": {"mirrors": ["http://127.0.0.1:9/simple/"]}}, *args)
    assert result.returncode == 2 and message in result.stderr
    assert "checking" not in result.stderr
