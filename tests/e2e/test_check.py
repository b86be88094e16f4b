"""`pypi-proxy check` against real mirrors on 127.0.0.1 (good, slow, stale, down, failing,
hanging, flat); the ranking and the table on their own are in the unit tier."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from support.process import free_port
from support.tables import cells
from support.upstream import FakeUpstream
from support.wheels import make_wheel

from proxy.commands.check_report import COLUMNS
from proxy.core.model import NormalizedName

COMMAND = [sys.executable, "-m", "proxy.cli", "check"]
ALPHA, BETA, TORCH = NormalizedName("alpha"), NormalizedName("beta"), NormalizedName("torch")


# -- the pure part --------------------------------------------------------------------------------


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
    assert cells(columns) == list(COLUMNS)
    return header, [dict(zip(COLUMNS, [*cells(line), ""], strict=False)) for line in lines]


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
