"""`pypi-proxy prefetch`: what pip resolves for each target machine is downloaded through the
proxy, so those machines then install it with every upstream silent; what fails is named."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.clients import installed, isolated_env, run
from support.process import free_port
from support.wheels import Dist, make_wheel
from support.world import World

from proxy.commands import prefetch_downloads
from proxy.commands.prefetch_plan import FileRef, Outcome, Target, pip_command
from proxy.commands.progress import Progress

COMMAND = [sys.executable, "-m", "proxy.cli", "prefetch"]
TIMEOUT = 60

# A native project with a wheel per platform; on Windows it also needs colorama.
TAGS = {
    "win_amd64": "cp311-cp311-win_amd64",
    "manylinux2014_x86_64": "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
}
REQUIRES = ["purelib>=1", 'colorama; sys_platform == "win32"']
NATIVE = {
    platform: make_wheel("nativeapp", "1.0", tag=tag, requires=REQUIRES, payload_size=300_000)
    for platform, tag in TAGS.items()
}
PURELIB = make_wheel("purelib", "1.2")
COLORAMA = make_wheel("colorama", "0.4.6")
EVERY_FILE = [*NATIVE.values(), PURELIB, COLORAMA]


@pytest.fixture
def stocked(world: World) -> World:
    for dist in (*NATIVE.values(), COLORAMA):
        world.mirror.add(dist)
    # With the upstream's own .metadata: pip resolves it even when the wheel cannot be had.
    world.mirror.add(PURELIB, metadata=True)
    return world


def _config_file(world: World, tmp_path: Path) -> Path:
    """The config the proxy under test runs with (as World.config builds it), as a file; its
    listen port is no proxy's, which --url overrides."""
    data: dict[str, Any] = {
        "listen": {"host": "0.0.0.0", "port": free_port()},
        "cache": {"dir": str(tmp_path / "not-this-one")},
        "upstreams": {
            "pypi": {"mirrors": [world.mirror.root_url(world.mirror_url)]},
            "pytorch": {"mirrors": [world.torch.root_url(world.torch_url)]},
        },
        "routes": [
            {"projects": ["torch", "torchvision"], "upstreams": ["pytorch"]},
            {"projects": ["*"], "upstreams": ["pypi", "pytorch"]},
        ],
    }
    path = tmp_path / "pypi-proxy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _prefetch(
    world: World, tmp_path: Path, base: str, *args: str
) -> subprocess.CompletedProcess[str]:
    config = _config_file(world, tmp_path)
    result = subprocess.run(
        [*COMMAND, "--config", str(config), "--url", base, *args],
        env=isolated_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    print(result.stdout, result.stderr, sep="\n")
    return result


def _requirements(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _row(stdout: str, platform: str) -> list[str]:
    return next(line.split() for line in stdout.splitlines() if line.startswith(platform + " "))


def test_prefetch_for_two_platforms_then_each_installs_with_the_upstreams_silent(
    stocked: World, tmp_path: Path
) -> None:
    world = stocked
    requirements = _requirements(tmp_path, "nativeapp")
    targets = ["--platform", "win_amd64", "--platform", "manylinux2014_x86_64"]
    # Warming dependencies would fetch some files before the command asks: it counts them
    # as already cached. Off, so that what the command fetched itself is counted exactly.
    with world.proxy(prefetch={"dependencies": False}) as base:
        result = _prefetch(
            world, tmp_path, base, "-r", str(requirements), *targets, "--python-version", "3.11"
        )
        assert result.returncode == 0, result.stderr
        # platform, python, packages, files, size (2 words), failed: Windows also needs
        # colorama (its marker is evaluated for Windows, not for this machine).
        assert _row(result.stdout, "win_amd64")[:4] == ["win_amd64", "3.11", "3", "3"]
        assert _row(result.stdout, "win_amd64")[-1] == "0"
        assert _row(result.stdout, "manylinux2014_x86_64")[:4] == [
            "manylinux2014_x86_64", "3.11", "2", "2"
        ]  # fmt: skip
        assert "4 of 4 files in the cache: 0 already cached, 4 fetched now" in result.stdout
        assert {dist.sha256 for dist in EVERY_FILE} <= world.cached_files()

        world.mirror.reset_log()
        world.torch.reset_log()
        for platform, tag in TAGS.items():
            target = tmp_path / platform
            run(sys.executable, "-m", "pip", "install", "--no-cache-dir",
                "--index-url", f"{base}/simple/", "--target", target,
                "--only-binary=:all:", "--platform", platform, "--python-version", "3.11",
                "-r", requirements)  # fmt: skip
            # pip evaluates markers for the machine it runs on, whatever --platform says.
            expected = {"nativeapp": "1.0", "purelib": "1.2"}
            if sys.platform == "win32":
                expected["colorama"] = "0.4.6"
            assert installed(target) == expected
            wheel = (target / "nativeapp-1.0.dist-info" / "WHEEL").read_text()
            assert f"Tag: {tag}\n" in wheel
        # What a Windows machine's pip asks for besides: colorama's page and wheel.
        with httpx.Client(base_url=base, timeout=10) as client:
            page = client.get("/simple/colorama/", headers={"Accept": "text/html"})
            assert page.status_code == 200 and page.headers["X-Cache"] == "HIT"
            wheel_file = client.get(f"/files/colorama/{COLORAMA.filename}")
            assert wheel_file.headers["X-Cache"] == "HIT"
            assert wheel_file.content == COLORAMA.content
        assert world.mirror.requests == [] and world.torch.requests == []

        again = _prefetch(
            world, tmp_path, base, "-r", str(requirements), *targets, "--python-version", "3.11"
        )
        assert again.returncode == 0, again.stderr
        assert "4 of 4 files in the cache: 4 already cached, 0 fetched now" in again.stdout
        assert world.mirror.requests == [] and world.torch.requests == []


def test_a_requirement_that_does_not_exist_fails_naming_it(stocked: World, tmp_path: Path) -> None:
    requirements = _requirements(tmp_path, "nativeapp", "no-such-project==1.0")
    with stocked.proxy() as base:
        result = _prefetch(
            stocked, tmp_path, base, "-r", str(requirements), "--platform", "win_amd64",
            "--python-version", "3.11",
        )  # fmt: skip
    assert result.returncode == 1
    assert "win_amd64 / python 3.11: pip could not resolve the requirements" in result.stderr
    assert "No matching distribution found for no-such-project==1.0" in result.stderr
    assert _row(result.stdout, "win_amd64")[-1] == "resolve"


def test_a_file_the_proxy_cannot_serve_fails_naming_it(stocked: World, tmp_path: Path) -> None:
    stocked.mirror.file_faults.missing = {PURELIB.filename}
    with stocked.proxy() as base:
        result = _prefetch(
            stocked, tmp_path, base, "purelib", "colorama", "--python-version", "3.11"
        )
    assert result.returncode == 1
    assert f"{PURELIB.filename}: HTTP 404 from the proxy" in result.stderr
    assert f"fetched {COLORAMA.filename}" in result.stderr  # the rest still arrived
    cached = stocked.cached_files()
    assert COLORAMA.sha256 in cached and PURELIB.sha256 not in cached


def test_files_the_proxy_passes_through_uncached_are_failures(
    stocked: World, tmp_path: Path
) -> None:
    # The disk is "full" (min_free beyond any disk): the proxy serves files without keeping
    # them, which is no use the evening before class.
    full = {"dir": str(stocked.cache_dir), "min_free": "1000TB"}
    with stocked.proxy(cache=full) as base:
        result = _prefetch(stocked, tmp_path, base, "purelib", "--python-version", "3.11")
    assert result.returncode == 1
    assert f"{PURELIB.filename}: passed through uncached" in result.stderr
    assert PURELIB.sha256 not in stocked.cached_files()


def test_files_from_anywhere_but_the_proxy_are_refused(stocked: World, tmp_path: Path) -> None:
    # A requirements file may name its own index; the machines would then bypass the proxy.
    direct = stocked.mirror.root_url(stocked.mirror_url)
    requirements = _requirements(tmp_path, f"--index-url {direct}", "purelib")
    with stocked.proxy() as base:
        result = _prefetch(stocked, tmp_path, base, "-r", str(requirements))
    assert result.returncode == 1
    assert f"{PURELIB.filename}: not served by the proxy at {base}" in result.stderr
    # pip read the metadata from the mirror; nobody downloaded the wheel.
    assert stocked.mirror.count(lambda r: r.path.endswith(PURELIB.filename)) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--index", "cu999", "purelib"], "--index: no index named 'cu999' (known: default)"),
        (["--python-version", "three", "purelib"], "expected a version such as 3.11"),
        ([], "nothing to prefetch"),
        (["-r", "missing.txt"], "-r missing.txt: no such file"),
        (["purelib"], "no proxy answers at"),  # --url is a port nothing listens on
    ],
)
def test_usage_errors_exit_2(world: World, tmp_path: Path, args: list[str], message: str) -> None:
    result = _prefetch(world, tmp_path, f"http://127.0.0.1:{free_port()}", *args)
    assert result.returncode == 2
    assert message in result.stderr


# -- the shell's downloads, against a real server ---------------------------------------------


def test_a_download_is_verified_as_it_streams(world: World) -> None:
    def ref(dist: Dist, sha256: str | None) -> FileRef:
        return FileRef(world.mirror.file_url(world.mirror_url, dist.filename), sha256)

    world.mirror.add(PURELIB)
    world.mirror.add(COLORAMA)
    good, bad = ref(PURELIB, PURELIB.sha256), ref(COLORAMA, PURELIB.sha256)
    unlisted = ref(COLORAMA, None)
    log = io.StringIO()

    async def fetch_all() -> list[Outcome]:
        progress = Progress(3, log)
        limit = asyncio.Semaphore(2)
        async with httpx.AsyncClient(timeout=10) as client:
            return [
                await prefetch_downloads.download(client, r, limit, progress)
                for r in (good, bad, unlisted)
            ]

    assert asyncio.run(fetch_all()) == [
        Outcome(size=PURELIB.size, cached=False, error=None),
        Outcome(error=f"sha256 mismatch: expected {PURELIB.sha256}, got {COLORAMA.sha256}"),
        Outcome(size=COLORAMA.size, verified=False),
    ]
    assert log.getvalue().splitlines() == [
        f"[1/3] fetched {PURELIB.filename} ({PURELIB.size} B)",
        f"[2/3] FAILED {COLORAMA.filename}: sha256 mismatch: expected {PURELIB.sha256}, "
        f"got {COLORAMA.sha256}",
        f"[3/3] fetched {COLORAMA.filename} ({COLORAMA.size} B)",
    ]
    # A hash mismatch is not retried: the same bytes would come again.
    assert world.mirror.count(lambda r: r.path.endswith(COLORAMA.filename)) == 2


def test_the_pip_with_markers_reads_its_overrides(tmp_path: Path) -> None:
    # The bootstrap really changes what pip evaluates: `pip --version` runs, and a marker
    # evaluated through pip's packaging sees Windows.
    command = pip_command(Target("win_amd64"), "http://x.test/simple/", tmp_path, [])
    bootstrap = command[2].replace(
        'runpy.run_module("pip", run_name="__main__", alter_sys=True)',
        "print(markers.Marker('sys_platform == \"win32\"').evaluate())",
    )
    out = subprocess.run(
        [sys.executable, "-c", bootstrap, command[3]],
        capture_output=True, text=True, timeout=TIMEOUT, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "True"
