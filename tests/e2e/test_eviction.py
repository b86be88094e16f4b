"""The cache keeps to its size: least recently used files go first, a file being read stays
whole for its reader, and with the disk nearly full files pass through uncached."""

from __future__ import annotations

import hashlib
import shutil
import time

import httpx
import pytest
from support.wheels import make_wheel
from support.world import World

MIB = 1024 * 1024
WHEELS = {name: make_wheel(name, "1.0", payload_size=MIB) for name in ("aaa", "bbb", "ccc")}


def _url(name: str) -> str:
    return f"/files/{name}/{WHEELS[name].filename}"


@pytest.fixture
def stocked(world: World) -> World:
    for wheel in WHEELS.values():
        world.mirror.add(wheel)
    return world


def test_least_recently_used_files_are_evicted_to_stay_under_the_limit(stocked: World) -> None:
    cache = {"dir": str(stocked.cache_dir), "max_size": int(2.5 * MIB), "min_free": 0}
    with stocked.proxy(cache=cache) as base, httpx.Client(base_url=base, timeout=30) as client:
        for name in ("aaa", "bbb"):
            assert client.get(_url(name)).status_code == 200
            assert WHEELS[name].sha256 in stocked.cached_files()
            time.sleep(0.05)
        assert client.get(_url("aaa")).headers["x-cache"] == "HIT"  # aaa: used last
        time.sleep(0.05)
        assert client.get(_url("ccc")).status_code == 200  # over the limit: bbb goes
        kept = stocked.cached_files()
        assert kept == {WHEELS["aaa"].sha256, WHEELS["ccc"].sha256}
        usage = sum(
            p.stat().st_size for p in (stocked.cache_dir / "files").rglob("*") if p.is_file()
        )
        assert usage <= 2.5 * MIB
        # An evicted file is simply fetched again.
        assert client.get(_url("bbb")).headers["x-cache"] == "MISS"
    assert stocked.mirror.count(WHEELS["bbb"].filename) == 2


def test_a_file_evicted_while_it_is_served_reaches_its_reader_whole(stocked: World) -> None:
    # Large enough that the server is still sending it (socket buffers hold a few MiB).
    large = make_wheel("largepkg", "1.0", payload_size=48 * MIB)
    stocked.mirror.add(large)
    url = f"/files/largepkg/{large.filename}"
    cache = {"dir": str(stocked.cache_dir), "max_size": 49 * MIB, "min_free": 0}
    with stocked.proxy(cache=cache) as base, httpx.Client(base_url=base, timeout=30) as client:
        client.get(url)
        assert large.sha256 in stocked.cached_files()
        time.sleep(0.05)
        with client.stream("GET", url) as reading:  # a hit, read slowly
            assert reading.headers["x-cache"] == "HIT"
            chunks = reading.iter_bytes(chunk_size=64 * 1024)
            received = next(chunks)
            client.get(_url("aaa"))  # over the limit: the large file is evicted mid-read
            assert large.sha256 not in stocked.cached_files()
            received += b"".join(chunks)
    assert hashlib.sha256(received).hexdigest() == large.sha256


def test_with_the_disk_nearly_full_files_pass_through_uncached(stocked: World) -> None:
    # Keeping more free than the disk has: nothing may be cached.
    reserve = shutil.disk_usage(stocked.cache_dir.parent).free + 10**12
    cache = {"dir": str(stocked.cache_dir), "min_free": reserve}
    with stocked.proxy(cache=cache) as base, httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(2):
            response = client.get(_url("aaa"))
            assert response.headers["x-cache"] == "PASS"
            assert hashlib.sha256(response.content).hexdigest() == WHEELS["aaa"].sha256
    assert stocked.cached_files() == set()
    assert not list((stocked.cache_dir / "tmp").glob("*.part"))
    assert stocked.mirror.count(WHEELS["aaa"].filename) == 2
