"""What `pypi-proxy prefetch` plans and reports: targets, markers, pip's command line, the files
a pip report names, the summary table."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.commands import prefetch_plan as prefetch
from proxy.commands.addresses import local_url
from proxy.commands.prefetch_plan import FileRef, Outcome, Resolution, Target
from proxy.core.config_yaml import parse_config


def test_targets_are_every_platform_with_every_python() -> None:
    assert prefetch.targets(["win_amd64", "linux_x86_64", "win_amd64"], ["3.10", "3.12"]) == [
        Target("win_amd64", "3.10"),
        Target("win_amd64", "3.12"),
        Target("linux_x86_64", "3.10"),
        Target("linux_x86_64", "3.12"),
    ]
    assert prefetch.targets([], ["3.12"]) == [Target(None, "3.12")]
    assert prefetch.targets([], []) == [Target(None, None)]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (Target(None, None), {}),
        (Target(None, "3.12"), {"python_version": "3.12", "python_full_version": "3.12.0"}),
        (
            Target("win_amd64", "3.9.7"),
            {
                "python_version": "3.9", "python_full_version": "3.9.7", "os_name": "nt",
                "sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64",
            },
        ),
        (
            Target("manylinux_2_28_aarch64", None),
            {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
             "platform_machine": "aarch64"},
        ),
        (
            Target("manylinux2014_x86_64", None),
            {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
             "platform_machine": "x86_64"},
        ),
        (
            Target("macosx_11_0_arm64", None),
            {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin",
             "platform_machine": "arm64"},
        ),
        (
            Target("macosx_10_9_universal2", None),
            {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin"},
        ),
        (Target("some_new_platform", None), {}),
    ],
)  # fmt: skip
def test_markers_are_evaluated_for_the_target(target: Target, expected: dict[str, str]) -> None:
    assert prefetch.marker_environment(target) == expected


def test_the_pip_command_for_another_machine() -> None:
    report = Path("r.json")
    here = prefetch.pip_command(Target(), "https://p.test/simple/", report, ["-r", "req.txt"])
    assert here[1:3] == ["-m", "pip"]
    assert "--only-binary=:all:" not in here and "--trusted-host" not in here
    assert here[-2:] == ["-r", "req.txt"]

    there = prefetch.pip_command(
        Target("win_amd64", "3.11"), "http://10.0.0.5:3141/cpu/simple/", report, ["numpy"]
    )
    assert there[1] == "-c"  # pip with the target's marker environment
    assert "sys_platform" in there[3]
    flags = there[4:]
    for option in (["--dry-run"], ["--ignore-installed"], ["--no-cache-dir"],
                   ["--report", "r.json"], ["--index-url", "http://10.0.0.5:3141/cpu/simple/"],
                   ["--trusted-host", "10.0.0.5"], ["--only-binary=:all:"],
                   ["--platform", "win_amd64"], ["--python-version", "3.11"]):  # fmt: skip
        assert any(flags[i : i + len(option)] == option for i in range(len(flags))), option
    assert flags[-1] == "numpy"


def test_the_files_a_report_names() -> None:
    report = {
        "version": "1",
        "install": [
            {"download_info": {"url": "http://p.test/files/a/a-1-py3-none-any.whl",
                               "archive_info": {"hashes": {"sha256": "aa" * 32}}}},
            {"download_info": {"url": "http://p.test/files/b/b%2Bx-1.tar.gz",
                               "archive_info": {}}},
            {"download_info": {"url": "http://p.test/files/a/a-1-py3-none-any.whl",
                               "archive_info": {"hashes": {"sha256": "aa" * 32}}}},
        ],
    }  # fmt: skip
    count, files = prefetch.files_in_report(report)
    assert count == 3
    assert files == [
        FileRef("http://p.test/files/a/a-1-py3-none-any.whl", "aa" * 32),
        FileRef("http://p.test/files/b/b%2Bx-1.tar.gz", None),
    ]
    assert files[1].filename == "b+x-1.tar.gz"
    assert prefetch.same_origin("http://p.test:80/files/x", "http://p.test")
    assert not prefetch.same_origin("http://p.test:3141/files/x", "http://p.test:3142")
    assert not prefetch.same_origin("https://p.test/files/x", "http://p.test")


def test_the_summary_table_and_the_failures() -> None:
    win, mac = Target("win_amd64", "3.11"), Target("macosx_11_0_arm64", "3.11")
    a, b, c = (FileRef(f"http://p.test/files/{n}/{n}-1.whl", None) for n in "abc")
    resolutions = [
        Resolution(win, packages=2, files=(a, b)),
        Resolution(Target(None, "3.12"), packages=2, files=(a, c)),
        Resolution(mac, error="ERROR: No matching distribution found for torch==9"),
    ]
    outcomes = {
        a.url: Outcome(size=1_500_000, cached=True),
        b.url: Outcome(size=2_000),
        c.url: Outcome(error="HTTP 503 from the proxy: upstream unavailable"),
    }
    table = prefetch.summary_table(resolutions, outcomes)
    assert table.isascii()
    assert table.splitlines() == [
        "platform                python  packages  files    size   failed",
        "----------------------  ------  --------  -----  ------  -------",
        "win_amd64               3.11           2      2  1.5 MB        0",
        "this machine            3.12           2      2  1.5 MB        1",
        "macosx_11_0_arm64       3.11           -      -       -  resolve",
        "----------------------  ------  --------  -----  ------  -------",
        "total (distinct files)                        3  1.5 MB        2",
        "",
        "2 of 3 files in the cache: 1 already cached, 1 fetched now (2.0 kB)",
    ]
    assert prefetch.failure_lines(resolutions, outcomes) == [
        "macosx_11_0_arm64 / python 3.11: pip could not resolve the requirements:",
        "    ERROR: No matching distribution found for torch==9",
        "c-1.whl: HTTP 503 from the proxy: upstream unavailable",
    ]


def test_the_progress_line() -> None:
    assert (
        prefetch.progress_line(3, 10, 12_300_000, 45_600_000, 2, 2.0)
        == "[ 3/10 files] 12.3 MB of 45.6 MB+ at 6.2 MB/s"
    )
    assert prefetch.progress_line(1, 1, 900, 900, 0, 0.0) == "[1/1 files] 900 B of 900 B at -/s"


def test_the_url_of_the_running_proxy() -> None:
    config = parse_config({"upstreams": {"pypi": {"mirrors": ["https://m.test/simple/"]}}})
    assert local_url(config) == "http://127.0.0.1:3141"
    config = parse_config(
        {"listen": {"host": "10.0.0.5", "port": 8080},
         "upstreams": {"pypi": {"mirrors": ["https://m.test/simple/"]}}}
    )  # fmt: skip
    assert local_url(config) == "http://10.0.0.5:8080"


def test_error_tail_keeps_the_end_of_pips_stderr() -> None:
    stderr = "\n".join(f"line {i}" for i in range(20)) + "\n\nERROR: No matching distribution\n"
    assert prefetch.error_tail(stderr, 3) == "line 18\nline 19\nERROR: No matching distribution"
    assert prefetch.error_tail("") == "pip failed without a message"
