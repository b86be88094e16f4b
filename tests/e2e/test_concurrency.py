"""A classroom at once: many clients on one uncached file share one upstream download,
streamed to all of them while it arrives, in one process or several; ranges on files that are
cached, downloading, or not there yet."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support.process import proxy_process
from support.waiting import wait_for
from support.wheels import make_wheel
from support.world import World

CLIENTS = 32
WHEEL = make_wheel("classpkg", "1.0", payload_size=8 * 1024 * 1024)
URL = f"/files/classpkg/{WHEEL.filename}"


@pytest.fixture
def stocked(world: World) -> World:
    world.mirror.add(WHEEL)
    return world


def _file_gets(world: World) -> int:
    return world.mirror.count(lambda r: r.path.endswith(WHEEL.filename) and r.method == "GET")


def _classroom(base: str, world: World) -> list[bytes | Exception]:
    """CLIENTS clients ask at once while the upstream is held after its first chunk; each
    must get bytes before the upstream is let go. Returns each client's body (or error)."""
    gate = threading.Event()
    world.mirror.file_faults.gate = gate
    first_bytes = threading.Barrier(CLIENTS + 1, timeout=30)

    def client(_: int) -> bytes | Exception:
        try:
            with httpx.stream("GET", base + URL, timeout=30) as response:
                chunks = response.iter_bytes()
                head = next(chunks)
                first_bytes.wait()
                return head + b"".join(chunks)
        except Exception as exc:  # reported, and asserted on, by the caller
            first_bytes.abort()
            return exc

    with ThreadPoolExecutor(CLIENTS) as pool:
        bodies = pool.map(client, range(CLIENTS))
        first_bytes.wait()  # every client has bytes...
        assert world.mirror.requests[-1].bytes_sent < len(WHEEL.content)  # ...upstream is held
        gate.set()
        return list(bodies)


def test_32_clients_share_one_upstream_download(stocked: World, proxy: str) -> None:
    bodies = _classroom(proxy, stocked)
    assert [b for b in bodies if not isinstance(b, bytes)] == []
    assert {hashlib.sha256(b).hexdigest() for b in bodies if isinstance(b, bytes)} == {WHEEL.sha256}
    assert _file_gets(stocked) == 1


def test_a_corrupt_download_cuts_every_client_and_caches_nothing(
    stocked: World, proxy: str
) -> None:
    stocked.mirror.file_faults.corrupt = True
    bodies = _classroom(proxy, stocked)
    assert all(isinstance(b, httpx.HTTPError) for b in bodies), bodies
    assert stocked.cached_files() == set()
    assert _file_gets(stocked) == 1


@pytest.fixture
def two_workers(stocked: World, tmp_path: Path) -> Iterator[str]:
    config = {"upstreams": {"pypi": {"mirrors": [stocked.mirror.root_url(stocked.mirror_url)]}}}
    with proxy_process(config, tmp_path, "--workers", "2", cache_dir=stocked.cache_dir) as (
        _,
        base,
    ):
        yield base


def test_two_worker_processes_still_download_once(stocked: World, two_workers: str) -> None:
    # Both processes must be serving: over many connections each answers some.
    pids = {httpx.get(f"{two_workers}/-/health").json()["pid"] for _ in range(40)}
    assert len(pids) == 2
    bodies = _classroom(two_workers, stocked)
    assert [b for b in bodies if not isinstance(b, bytes)] == []
    assert {hashlib.sha256(b).hexdigest() for b in bodies if isinstance(b, bytes)} == {WHEEL.sha256}
    assert _file_gets(stocked) == 1


def test_ranges_on_a_file_still_downloading(stocked: World, proxy: str) -> None:
    stocked.mirror.file_faults.drip = 0.05  # 8 MiB in 64 KiB chunks: about 6 s
    size = len(WHEEL.content)
    with httpx.Client(base_url=proxy, timeout=30) as client, client.stream("GET", URL) as whole:
        rest = whole.iter_bytes()
        received = next(rest)  # the download is under way
        head = client.head(URL)
        assert head.headers["accept-ranges"] == "bytes"
        assert head.headers["content-length"] == str(size)
        # Bytes already there come from the growing file...
        early = client.get(URL, headers={"Range": "bytes=0-999"})
        assert early.status_code == 206 and early.content == WHEEL.content[:1000]
        # ...a range far ahead straight from upstream, without waiting for the download:
        # uv's and Poetry's probes of the end of a wheel.
        for probe in ("bytes=-10000", f"bytes={size - 16384}-{size - 1}"):
            tail = client.get(URL, headers={"Range": probe})
            assert tail.status_code == 206, probe
            assert tail.content == WHEEL.content[-len(tail.content) :]
            assert tail.headers["content-range"].endswith(f"/{size}")
        assert client.get(URL, headers={"Range": f"bytes={size}-"}).status_code == 416
        assert stocked.cached_files(settled=False) == set()  # all that while, still downloading
        received += b"".join(rest)
    assert hashlib.sha256(received).hexdigest() == WHEEL.sha256
    ranged_upstream = [r for r in stocked.mirror.requests if "range" in r.headers]
    assert len(ranged_upstream) == 2
    assert _file_gets(stocked) == 3  # the download, and the two probes


def test_uv_and_poetry_probes_on_a_file_not_yet_cached(stocked: World, proxy: str) -> None:
    size = len(WHEEL.content)
    with httpx.Client(base_url=proxy, timeout=30) as client:
        # uv: HEAD, then a suffix range
        head = client.head(URL)
        assert head.headers["accept-ranges"] == "bytes"
        assert int(head.headers["content-length"]) == size
        tail = client.get(URL, headers={"Range": "bytes=-8192"})
        assert tail.status_code == 206 and tail.content == WHEEL.content[-8192:]
        # Poetry: straight to a range, no HEAD
        poetry = client.get(URL, headers={"Range": "bytes=-10000"})
        assert poetry.status_code == 206 and poetry.content == WHEEL.content[-10000:]
        wait_for(lambda: stocked.cached_files() == {WHEEL.sha256})  # the full fill warmed it
        cached = client.get(URL, headers={"Range": "bytes=-10000"})
        assert cached.status_code == 206 and cached.headers["x-cache"] == "HIT"


def test_x_accel_redirect_hands_cache_hits_to_nginx(stocked: World) -> None:
    with stocked.proxy(offload={"x_accel_redirect": "/_cache/"}) as base:
        httpx.get(base + URL, timeout=30)  # fill
        hit = httpx.get(base + URL, timeout=30)
    sha = WHEEL.sha256
    assert hit.headers["x-accel-redirect"] == f"/_cache/{sha[:2]}/{sha[2:4]}/{sha}"
    assert hit.content == b"" and hit.headers["etag"] == f'"{sha}"'
