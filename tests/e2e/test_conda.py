"""Conda channels through the proxy: index files cached and rewritten, packages downloaded once
and verified, a real client (py-rattler) solving and installing from them, and what happens when
the mirrors fail, lag, send bad bytes or are gone."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgpack  # type: ignore[import-untyped]
import pytest
import rattler
import yaml
import zstandard
from support.conda import CondaPackage, big_repodata, build_channel, make_package, publish
from support.process import proxy_process
from support.servers import serve
from support.upstream import FakeUpstream
from support.waiting import wait_for

from proxy import create_app
from proxy.core.config_yaml import parse_config

WORLD = make_package("world", "1.2", fmt=".tar.bz2")
HELLO = make_package("hello", "1.0", depends=("world >=1",))
TOOL = make_package("tool", "2.0", subdir="linux-64", depends=("hello",))
BIG = make_package("bigdata", "1.0", payload=bytes(range(256)) * 8192)  # 2 MiB
FORGE = "/anaconda/cloud/conda-forge"  # TUNA's layout: sharded, with .zst
MAIN = "/anaconda/pkgs/main"  # plain repodata.json only


@dataclass
class Channels:
    upstream: FakeUpstream
    url: str
    cache: Path
    folder: Path

    def settings(self, *mirrors: str, **more: Any) -> dict[str, Any]:
        return {
            "cache": {"dir": str(self.cache), "page_ttl": "10m"},
            "timeouts": {"connect": 2, "first_byte": 3, "stall": 3},
            "upstreams": {"pypi": {"mirrors": [f"{self.url}/simple/"]}},
            "conda": {
                "upstreams": {"anaconda": {"mirrors": list(mirrors) or [f"{self.url}/anaconda/"]}},
                "channels": {
                    "conda-forge": "anaconda/cloud/conda-forge",
                    "pkgs/main": "anaconda/pkgs/main",
                },
            },
            **more,
        }

    @property
    def packages(self) -> list[CondaPackage]:
        return [WORLD, HELLO, TOOL, BIG]


@pytest.fixture
def channels(tmp_path: Path) -> Iterator[Channels]:
    upstream = FakeUpstream()
    forge = build_channel(tmp_path / "forge", [WORLD, HELLO, TOOL, BIG], zst=True, shards=True)
    main = build_channel(tmp_path / "main", [WORLD, HELLO])
    publish(upstream, FORGE, forge)
    publish(upstream, MAIN, main)
    with upstream.running() as url:
        yield Channels(upstream, url, tmp_path / "cache", forge)


def _proxy(settings: dict[str, Any]) -> Any:
    return serve(create_app(parse_config(settings)))


def test_index_files_pass_through_cached_and_missing_formats_are_real_404s(
    channels: Channels,
) -> None:
    with _proxy(channels.settings()) as base, httpx.Client(base_url=base, timeout=10) as http:
        first = http.get("/conda/conda-forge/noarch/repodata.json")
        assert first.status_code == 200
        assert first.headers["x-cache"] == "MISS"
        assert first.content == (channels.folder / "noarch" / "repodata.json").read_bytes()
        again = http.get("/conda/conda-forge/noarch/repodata.json")
        assert again.headers["x-cache"] == "HIT" and again.content == first.content
        not_modified = http.get(
            "/conda/conda-forge/noarch/repodata.json",
            headers={"If-None-Match": first.headers["etag"]},
        )
        assert not_modified.status_code == 304
        assert channels.upstream.count(f"{FORGE}/noarch/repodata.json", "GET") == 1

        zst = http.get("/conda/conda-forge/noarch/repodata.json.zst")
        assert zst.status_code == 200
        assert _unzstd(zst.content) == first.content
        for _ in range(3):  # main has no .zst: a real 404, asked upstream once
            missing = http.get("/conda/pkgs/main/noarch/repodata.json.zst")
            assert missing.status_code == 404
        assert channels.upstream.count(f"{MAIN}/noarch/repodata.json.zst") == 1
        # noarch always answers; a ranged read of a cached index file too.
        empty = http.get("/conda/pkgs/main/noarch/current_repodata.json")
        assert empty.status_code == 200 and empty.json()["packages"] == {}
        ranged = http.get("/conda/conda-forge/noarch/repodata.json", headers={"Range": "bytes=0-9"})
        assert ranged.status_code == 206 and ranged.content == first.content[:10]
        for bad in (
            "/conda/nope/noarch/repodata.json",
            "/conda/conda-forge/linux/repodata.json",
            "/conda/conda-forge/noarch/../../x",
            "/conda/conda-forge/noarch/evil.sh",
        ):
            assert http.get(bad).status_code == 404, bad


def test_packages_are_served_only_if_listed_and_downloaded_once(channels: Channels) -> None:
    with _proxy(channels.settings()) as base, httpx.Client(base_url=base, timeout=10) as http:
        unlisted = http.get(f"/conda/conda-forge/noarch/{HELLO.filename}")
        assert unlisted.status_code == 404  # no repodata cached yet: nothing is listed
        http.get("/conda/conda-forge/noarch/repodata.json").raise_for_status()
        made_up = http.get("/conda/conda-forge/noarch/madeup-1.0-0.conda")
        assert made_up.status_code == 404
        asked = channels.upstream.count(lambda r: "madeup" in r.path or HELLO.filename in r.path)
        assert asked == 0

        url = f"/conda/conda-forge/noarch/{BIG.filename}"
        with ThreadPoolExecutor(20) as pool:
            bodies = list(pool.map(lambda _: httpx.get(base + url, timeout=30).content, range(20)))
        assert {hashlib.sha256(b).hexdigest() for b in bodies} == {BIG.sha256}
        assert channels.upstream.count(f"{FORGE}/noarch/{BIG.filename}", "GET") == 1
        tail = http.get(url, headers={"Range": "bytes=-100"})
        assert tail.status_code == 206 and tail.content == BIG.content[-100:]


@pytest.mark.parametrize("checked_by", ["sha256", "md5"])
def test_a_corrupt_package_is_never_committed(channels: Channels, checked_by: str) -> None:
    """A big one (sha256) streams and is cut short; a small, old one listed with an md5 alone
    is checked before a byte is sent."""
    package, channel = (BIG, "conda-forge") if checked_by == "sha256" else (WORLD, "pkgs/main")
    if checked_by == "md5":
        data = json.loads((channels.folder / "noarch" / "repodata.json").read_bytes())
        del data["packages"][WORLD.filename]["sha256"]
        channels.upstream.add_blob(f"{MAIN}/noarch/repodata.json", json.dumps(data).encode())
    url = f"/conda/{channel}/noarch/{package.filename}"
    with _proxy(channels.settings()) as base, httpx.Client(base_url=base, timeout=10) as http:
        http.get(f"/conda/{channel}/noarch/repodata.json").raise_for_status()
        channels.upstream.file_faults.corrupt = True
        assert _body(http, url) is None
        assert package.sha256 not in _blobs(channels.cache)
        channels.upstream.file_faults.corrupt = False
        wait_for(lambda: _body(http, url) == package.content, 15)
    wait_for(lambda: package.sha256 in _blobs(channels.cache))


def _body(http: httpx.Client, url: str) -> bytes | None:
    """A whole 200's body; None for anything else (an error, a body cut short)."""
    try:
        response = http.get(url)
    except httpx.HTTPError:
        return None
    return response.content if response.status_code == 200 else None


def test_rattler_solves_and_installs_through_the_proxy_then_offline(
    channels: Channels, tmp_path: Path
) -> None:
    settings = channels.settings()
    with _proxy(settings) as base:
        prefix = _install(base, tmp_path / "first", ["tool"])
        assert (prefix / "share" / "hello" / "hello.txt").read_bytes() == b"hello 1.0\n"
        assert (prefix / "share" / "world" / "hello.txt").exists()
    asked = {r.path for r in channels.upstream.requests}
    assert any("/shards/" in p for p in asked), "rattler read the sharded index"

    channels.upstream.file_faults.status = 503  # every mirror down from now on
    settings["cache"]["page_ttl"] = "0s"  # and every index file due for a refresh
    settings["cache"]["stale_while_revalidate"] = "0s"
    with _proxy(settings) as base:
        prefix = _install(base, tmp_path / "offline", ["tool"])
        assert (prefix / "share" / "tool" / "hello.txt").exists()


def test_failover_between_two_mirrors(channels: Channels, tmp_path: Path) -> None:
    down = FakeUpstream()
    down.file_faults.status = 503
    with down.running() as down_url:
        settings = channels.settings(f"{down_url}/anaconda/", f"{channels.url}/anaconda/")
        settings["mirrors"] = {"order": "configured"}
        with _proxy(settings) as base:
            prefix = _install(base, tmp_path / "env", ["hello"], channel="pkgs/main")
            assert (prefix / "share" / "world" / "hello.txt").exists()
        assert down.count("/anaconda/pkgs/main/") >= 1


def test_base_url_is_made_relative_and_packages_come_from_it(channels: Channels) -> None:
    data = json.loads((channels.folder / "linux-64" / "repodata.json").read_bytes())
    data["info"]["base_url"] = f"{channels.url}/cdn/linux-64/"
    body = json.dumps(data, indent=1).encode()
    channels.upstream.add_blob(f"{FORGE}/linux-64/repodata.json", body)
    channels.upstream.add_blob(f"/cdn/linux-64/{TOOL.filename}", TOOL.content)
    with _proxy(channels.settings()) as base, httpx.Client(base_url=base, timeout=10) as http:
        served = http.get("/conda/conda-forge/linux-64/repodata.json").content
        assert json.loads(served)["info"]["base_url"] == "./"
        assert served == body.replace(f"{channels.url}/cdn/linux-64/".encode(), b"./")
        assert http.get(f"/conda/conda-forge/linux-64/{TOOL.filename}").content == TOOL.content
        assert channels.upstream.count(f"/cdn/linux-64/{TOOL.filename}") == 1

        index = _unzstd(http.get("/conda/conda-forge/linux-64/repodata_shards.msgpack.zst").content)
        info = msgpack.unpackb(index)["info"]
        assert info["shards_base_url"] == "./shards/"


def _install(base: str, root: Path, specs: list[str], channel: str = "conda-forge") -> Path:
    return _install_from(f"{base}/conda/{channel}", root, specs)


def _install_from(channel: str, root: Path, specs: list[str]) -> Path:
    """Solve `specs` from the channel at this URL with rattler, and install them."""
    prefix = root / "env"

    async def run() -> None:
        gateway = rattler.Gateway(cache_dir=root / "repodata-cache")
        records = await rattler.solve(
            [rattler.Channel(channel)],
            specs,
            gateway=gateway,
            platforms=["linux-64", "noarch"],
        )
        await rattler.install(records, prefix, cache_dir=root / "pkgs", show_progress=False)

    asyncio.run(asyncio.wait_for(run(), 60))
    return prefix


def _blobs(cache: Path) -> set[str]:
    return {p.name for p in (cache / "files").rglob("*") if p.is_file()}


def _unzstd(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def test_stale_copies_are_revalidated_with_the_upstreams_validators(channels: Channels) -> None:
    settings = channels.settings()
    settings["cache"].update(page_ttl="0s", stale_while_revalidate="0s")
    path = f"{FORGE}/noarch/repodata.json"
    with _proxy(settings) as base, httpx.Client(base_url=base, timeout=10) as http:
        first = http.get("/conda/conda-forge/noarch/repodata.json")
        second = http.get("/conda/conda-forge/noarch/repodata.json")
        assert first.content == second.content and second.headers["x-cache"] == "MISS"
    asked = [r for r in channels.upstream.requests if r.path == path]
    assert [r.status for r in asked] == [200, 304]
    assert asked[1].headers["if-none-match"] == f'"{hashlib.sha256(first.content).hexdigest()}"'


def test_stale_while_revalidate_answers_at_once_and_refreshes_behind(channels: Channels) -> None:
    settings = channels.settings()
    settings["cache"].update(page_ttl="0s", stale_while_revalidate="1d")
    path = f"{FORGE}/noarch/repodata.json"
    with _proxy(settings) as base, httpx.Client(base_url=base, timeout=10) as http:
        http.get("/conda/conda-forge/noarch/repodata.json").raise_for_status()
        channels.upstream.file_faults.delay = 2  # a refresh now takes a while
        stale = http.get("/conda/conda-forge/noarch/repodata.json")
        assert stale.headers["x-cache"] == "STALE"
        assert stale.elapsed.total_seconds() < 1.5
        wait_for(lambda: channels.upstream.count(path) == 2)


@pytest.mark.parametrize("fault", ["hang", "cut", "corrupt", "503"])
def test_a_failing_mirror_is_passed_over_for_index_files_and_packages(
    channels: Channels, tmp_path: Path, fault: str
) -> None:
    bad = FakeUpstream()
    publish(bad, FORGE, channels.folder)
    faults = bad.file_faults
    if fault == "hang":
        faults.hang = True
    elif fault == "cut":
        faults.cut_after = 100
    elif fault == "corrupt":  # its packages and shards (index files name no hash to check)
        for path in channels.folder.rglob("*"):
            if path.suffix in (".conda", ".bz2") or path.parent.name == "shards":
                flipped = bytearray(path.read_bytes())
                flipped[len(flipped) // 2] ^= 0xFF
                bad.add_blob(
                    f"{FORGE}/{path.relative_to(channels.folder).as_posix()}", bytes(flipped)
                )
    else:
        faults.status = 503
    with bad.running() as bad_url:
        settings = channels.settings(f"{bad_url}/anaconda/", f"{channels.url}/anaconda/")
        settings["mirrors"] = {"order": "configured"}
        settings["timeouts"].update(hedge_min="200ms", hedge_max="500ms")
        with _proxy(settings) as base:
            prefix = _install(base, tmp_path / "env", ["tool"])
            assert (prefix / "share" / "tool" / "hello.txt").exists()
            # rattler read shards: BIG is listed once the whole repodata is (through a hang too)
            httpx.get(f"{base}/conda/conda-forge/noarch/repodata.json", timeout=30)
            got = httpx.get(f"{base}/conda/conda-forge/noarch/{BIG.filename}", timeout=30)
            assert got.status_code == 200, got.text
            assert hashlib.sha256(got.content).hexdigest() == BIG.sha256
        assert bad.count("/anaconda/cloud/conda-forge/") >= 1
    assert {HELLO.sha256, WORLD.sha256, TOOL.sha256, BIG.sha256} <= _blobs(channels.cache)


def test_the_printed_condarc_and_prefetch_conda_work_through_the_proxy(
    channels: Channels, tmp_path: Path
) -> None:
    settings = channels.settings()
    config = tmp_path / "proxy.yaml"
    config.write_text(yaml.safe_dump(settings))
    with _proxy(settings) as base:
        printed = _cli("client-config", "--config", config, "--url", f"{base}/simple/").stdout
        condarc = yaml.safe_load(printed.split("in ~/.condarc:\n")[1].split("\n\n")[0])
        assert condarc["default_channels"] == [f"{base}/conda/pkgs/main"]
        forge = f"{condarc['custom_channels']['conda-forge']}/conda-forge"
        prefix = _install_from(forge, tmp_path / "condarc", ["tool"])
        assert (prefix / "share" / "tool" / "hello.txt").exists()
        home = httpx.get(base + "/", timeout=10).text  # for the LAN: its address, not loopback
        port = base.rsplit(":", 1)[1]
        assert re.search(rf"channel_alias: http://[0-9.]+:{port}/conda\n", home), home

    environment = tmp_path / "environment.yml"
    environment.write_text("channels: [conda-forge]\ndependencies:\n  - tool\n  - pip:\n    - x\n")
    cache = tmp_path / "prefetched"
    settings["cache"]["dir"] = str(cache)
    with _proxy(settings) as base:
        done = _cli("prefetch", "--config", config, "--url", base, "--conda", environment,
                    "--subdir", "linux-64")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "3 conda packages through the proxy, 0 failures" in done.stdout
        assert {HELLO.sha256, WORLD.sha256, TOOL.sha256} <= _blobs(cache)
        wrong = _cli("prefetch", "--config", config, "--url", base, "--conda", config)
        assert wrong.returncode == 2 and "dependencies: expected a list" in wrong.stderr
    stats = _cli("cache", "--config", config, "stats").stdout
    assert "3 cached" in stats and "conda:conda-forge/linux-64/" + TOOL.filename in stats


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "proxy.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_remembered_404s_and_copies_answer_offline_and_are_counted(channels: Channels) -> None:
    settings = channels.settings()
    settings["cache"].update(page_ttl="0s", stale_while_revalidate="0s")
    probes = ["/conda/pkgs/main/linux-64/repodata.json.zst",
              "/conda/pkgs/main/linux-64/repodata_shards.msgpack.zst"]  # fmt: skip
    with _proxy(settings) as base, httpx.Client(base_url=base, timeout=10) as http:
        assert [http.get(p).status_code for p in probes] == [404, 404]
        copy = http.get("/conda/pkgs/main/noarch/repodata.json")
        channels.upstream.file_faults.status = 503  # every mirror down, every entry due
        assert [http.get(p).status_code for p in probes] == [404, 404]
        stale = http.get("/conda/pkgs/main/noarch/repodata.json")
        assert stale.headers["x-cache"] == "STALE" and stale.content == copy.content
        never = http.get("/conda/pkgs/main/osx-64/repodata.json")
        assert never.status_code == 503 and "retry-after" in never.headers
        metrics = http.get("/metrics").text
        assert 'pypi_proxy_conda_requests_total{kind="index"} 7.0' in metrics
        assert 'pypi_proxy_cache_results_total{kind="conda",result="STALE"} 3.0' in metrics
        home = http.get("/").text
        assert "Conda packages listed</dt><dd>2</dd>" in home
        health = http.get("/-/health").json()
        assert any("anaconda" in problem for problem in health["problems"]), health


def test_two_workers_fetch_an_index_file_and_a_package_once(
    channels: Channels, tmp_path: Path
) -> None:
    channels.upstream.file_faults.delay = 0.5  # every client asks while the first fetch runs
    with proxy_process(channels.settings(), tmp_path, "--workers", "2") as (_, base):
        pids = {httpx.get(f"{base}/-/health").json()["pid"] for _ in range(40)}
        assert len(pids) == 2, "both workers answer"
        for url in ("/conda/conda-forge/noarch/repodata.json",
                    f"/conda/conda-forge/noarch/{BIG.filename}"):  # fmt: skip
            with ThreadPoolExecutor(20) as pool:
                bodies = list(pool.map(partial(httpx.get, timeout=30), [base + url] * 20))
            assert {b.status_code for b in bodies} == {200}
            assert len({b.content for b in bodies}) == 1
    assert channels.upstream.count(f"{FORGE}/noarch/repodata.json", "GET") == 1
    assert channels.upstream.count(f"{FORGE}/noarch/{BIG.filename}", "GET") == 1


def test_a_repodata_is_served_first_and_its_packages_are_waited_for(channels: Channels) -> None:
    document = big_repodata(60_000, TOOL)
    channels.upstream.add_blob(f"{FORGE}/linux-64/repodata.json", document)
    with _proxy(channels.settings()) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/conda/conda-forge/linux-64/repodata.json").content == document
        package = http.get(f"/conda/conda-forge/linux-64/{TOOL.filename}")  # read meanwhile
        assert package.status_code == 200 and package.content == TOOL.content
        assert http.get("/conda/conda-forge/linux-64/filler59999-1.0-h059999_0.conda").status_code
        assert http.get("/conda/conda-forge/linux-64/nothere-1.0-0.conda").status_code == 404


def test_a_repodata_that_breaks_off_past_its_info_is_dropped_and_fetched_again(
    channels: Channels,
) -> None:
    good = (channels.folder / "linux-64" / "repodata.json").read_bytes()
    channels.upstream.add_blob(f"{FORGE}/linux-64/repodata.json", good[: len(good) // 2 + 20])
    path = "/conda/conda-forge/linux-64/repodata.json"
    with _proxy(channels.settings()) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert http.get(path).status_code == 200  # served as it came: its info is whole
        assert http.get(f"/conda/conda-forge/linux-64/{TOOL.filename}").status_code == 404
        channels.upstream.add_blob(f"{FORGE}/linux-64/repodata.json", good)
        wait_for(lambda: http.get(path).content == good)
        assert http.get(f"/conda/conda-forge/linux-64/{TOOL.filename}").content == TOOL.content
    assert channels.upstream.count(f"{FORGE}/linux-64/repodata.json", "GET") == 2


def test_an_index_file_removed_by_hand_is_fetched_again(channels: Channels) -> None:
    path = "/conda/conda-forge/noarch/repodata.json"
    with _proxy(channels.settings()) as base, httpx.Client(base_url=base, timeout=10) as http:
        first = http.get(path).content
        next((channels.cache / "conda" / "index").rglob("noarch/repodata.json")).unlink()
        assert http.get(path).content == first
    assert channels.upstream.count(f"{FORGE}/noarch/repodata.json", "GET") == 2
