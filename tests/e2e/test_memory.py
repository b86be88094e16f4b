"""Memory stays flat while many clients download large files, cached or still arriving."""

from __future__ import annotations

import hashlib
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support.conda import big_repodata, make_package
from support.process import proxy_process, rss_bytes
from support.upstream import FakeUpstream
from support.wheels import make_wheel
from support.world import World

LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MIB = 1024 * 1024
CLIENTS = 16
LARGE = make_wheel("largepkg", "1.0", payload_size=128 * MIB)
OTHER = make_wheel("otherpkg", "1.0", payload_size=128 * MIB)
# Generous against the ~16 MiB of 1 MiB chunks in flight: what must not happen is growth
# with the file size (128 MiB) or with clients times file size.
BOUND = 48 * MIB


def _download_all(base: str, url: str) -> list[str]:
    def one(_: int) -> str:
        digest = hashlib.sha256()
        with httpx.stream("GET", base + url, timeout=60) as response:
            for chunk in response.iter_bytes(chunk_size=MIB):
                digest.update(chunk)
        return digest.hexdigest()

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS)))


def _peak_growth(pid: int, work: threading.Thread) -> int:
    baseline = peak = rss_bytes(pid)
    work.start()
    while work.is_alive():
        peak = max(peak, rss_bytes(pid))
        work.join(0.02)
    return peak - baseline


@LINUX
def test_many_clients_on_large_files_keep_memory_flat(world: World, tmp_path: Path) -> None:
    world.mirror.add(LARGE)
    world.mirror.add(OTHER)
    config = {"upstreams": {"pypi": {"mirrors": [world.mirror.root_url(world.mirror_url)]}}}
    with proxy_process(config, tmp_path, cache_dir=world.cache_dir) as (process, base):
        large_url = f"/files/largepkg/{LARGE.filename}"
        httpx.get(base + large_url, timeout=60)  # cached now
        httpx.get(f"{base}/simple/otherpkg/")  # the page, so only the file is new below

        results: dict[str, list[str]] = {}
        cached = threading.Thread(
            target=lambda: results.setdefault("cached", _download_all(base, large_url))
        )
        growth_cached = _peak_growth(process.pid, cached)
        arriving = threading.Thread(
            target=lambda: results.setdefault(
                "arriving", _download_all(base, f"/files/otherpkg/{OTHER.filename}")
            )
        )
        growth_arriving = _peak_growth(process.pid, arriving)

    assert results["cached"] == [LARGE.sha256] * CLIENTS
    assert results["arriving"] == [OTHER.sha256] * CLIENTS
    print(f"\nRSS growth, {CLIENTS} clients x 128 MiB: cached {growth_cached / MIB:.1f} MiB, "
          f"while downloading {growth_arriving / MIB:.1f} MiB")  # fmt: skip
    assert growth_cached < BOUND
    assert growth_arriving < BOUND


@LINUX
def test_a_100_mb_repodata_passes_through_with_flat_memory(tmp_path: Path) -> None:
    package = make_package("realpkg", "1.0")
    document = big_repodata(320_000, package)
    assert len(document) > 100 * 10**6
    upstream = FakeUpstream()
    upstream.add_blob("/anaconda/pkgs/main/linux-64/repodata.json", document)
    upstream.add_blob(f"/anaconda/pkgs/main/linux-64/{package.filename}", package.content)
    with upstream.running() as url:
        config = {
            "upstreams": {"pypi": {"mirrors": [f"{url}/simple/"]}},
            "conda": {"upstreams": {"anaconda": {"mirrors": [f"{url}/anaconda/"]}},
                      "channels": {"pkgs/main": "anaconda/pkgs/main"}},
        }  # fmt: skip
        with proxy_process(config, tmp_path, cache_dir=tmp_path / "cache") as (process, base):
            got: dict[str, str] = {}

            def fetch() -> None:
                digest = hashlib.sha256()
                with httpx.stream("GET", f"{base}/conda/pkgs/main/linux-64/repodata.json",
                                  timeout=120) as response:  # fmt: skip
                    for chunk in response.iter_bytes(chunk_size=MIB):
                        digest.update(chunk)
                got["repodata"] = digest.hexdigest()
                listed = httpx.get(
                    f"{base}/conda/pkgs/main/linux-64/{package.filename}", timeout=120
                )
                got["package"] = hashlib.sha256(listed.content).hexdigest()

            growth = _peak_growth(process.pid, threading.Thread(target=fetch))
    assert got == {"repodata": hashlib.sha256(document).hexdigest(), "package": package.sha256}
    print(f"\nRSS growth, a {len(document) / MIB:.0f} MiB repodata.json passed through, read "
          f"into the listing and served: {growth / MIB:.1f} MiB")  # fmt: skip
    assert growth < BOUND
