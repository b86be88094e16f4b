"""Upstreams that fail in time: resumed downloads, progress timeouts, stale pages and offline
installs, Retry-After, redirects, and a proxy killed in the middle of a download."""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from starlette.middleware.gzip import GZipMiddleware
from support.clients import install
from support.process import proxy_process
from support.servers import serve
from support.upstream import FakeUpstream
from support.waiting import wait_for
from support.wheels import make_wheel
from support.world import BIG, TINYLIB, World, stock

from proxy import create_app
from proxy.core.config_yaml import parse_config

WANTED = ["tinyapp", "torch", "metapkg"]
EXPECTED = {
    "tinyapp": "1.0",
    "tinylib": "1.1",
    "torch": "2.3.1+cu121",
    "tinydep": "0.5",
    "metapkg": "1.0",
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_download_cut_at_40_percent_resumes_with_one_ranged_request(
    world: World, proxy: str
) -> None:
    # Below `downloads.segment_above`: one stream, resumed.
    wheel = make_wheel("hugepkg", "1.0", payload_size=30 * 1024 * 1024)
    world.mirror.add(wheel)
    world.mirror.file_faults.cut_after = len(wheel.content) * 4 // 10
    world.mirror.file_faults.cut_times = 1
    with httpx.Client(timeout=30) as client:
        response = client.get(f"{proxy}/files/hugepkg/{wheel.filename}")
    # One response, complete and right: the client never saw the break.
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(wheel.content))
    assert _sha256(response.content) == wheel.sha256
    gets = [r for r in world.mirror.requests if r.path.endswith(wheel.filename)]
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    assert gets[1].headers["range"] == f"bytes={world.mirror.file_faults.cut_after}-"
    assert gets[1].headers["if-range"] == f'"{wheel.sha256}"'  # the fake's ETag


def test_progress_timeouts_let_a_slow_moving_download_finish(world: World) -> None:
    slow = make_wheel("slowpkg", "1.0", payload_size=640 * 1024)
    world.mirror.add(slow)
    world.mirror.file_faults.drip = 0.3  # ~11 chunks: about 3 s in all, never 1 s without a byte
    timeouts = {"connect": 1, "first_byte": 1, "stall": 1}
    with world.proxy(timeouts=timeouts) as base:
        started = time.monotonic()
        response = httpx.get(f"{base}/files/slowpkg/{slow.filename}", timeout=30)
        took = time.monotonic() - started
    assert _sha256(response.content) == slow.sha256
    assert took > 2  # longer than any of the timeouts: only progress counts
    assert world.mirror.count(slow.filename) == 1


def test_a_stalled_body_is_resumed(world: World) -> None:
    # The first response stops after its first chunk, held at the gate; the proxy's stall
    # timeout (1 s) gives up on it and resumes with a ranged request, which goes through once
    # the gate opens (1.5 s after the first request).
    gate = threading.Event()
    world.mirror.file_faults.gate = gate

    def open_gate_later() -> None:
        wait_for(lambda: world.mirror.count(BIG.filename) >= 1)
        time.sleep(1.5)
        gate.set()

    opener = threading.Thread(target=open_gate_later)
    with world.proxy(timeouts={"connect": 1, "first_byte": 1, "stall": 1}) as base:
        opener.start()
        response = httpx.get(f"{base}/files/bigpkg/{BIG.filename}", timeout=30)
        opener.join()
    assert _sha256(response.content) == BIG.sha256
    ranged = [r for r in world.mirror.requests if "range" in r.headers]
    assert len(ranged) == 1


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_offline_everything_cached_installs_and_the_rest_is_503(
    client: str, tmp_path: Path
) -> None:
    mirror, torch = FakeUpstream("mirror"), FakeUpstream("pytorch")
    stock(mirror, torch)
    upstreams = ExitStack()
    world = World(
        mirror,
        upstreams.enter_context(mirror.running()),
        torch,
        upstreams.enter_context(torch.running()),
        tmp_path / "cache",
    )
    # Pages always expired and never served stale while revalidating: every request asks.
    cache = {"dir": str(world.cache_dir), "page_ttl": 0, "stale_while_revalidate": 0}
    with world.proxy(cache=cache) as base:
        index = f"{base}/simple/"
        assert install(client, index, tmp_path / "warm", *WANTED) == EXPECTED
        upstreams.close()  # every upstream gone

        assert install(client, index, tmp_path / "offline", *WANTED) == EXPECTED
        page = httpx.get(f"{index}tinyapp/")
        assert page.status_code == 200 and page.headers["x-cache"] == "STALE"
        missing = httpx.get(f"{index}never-seen/")
        assert missing.status_code == 503
        assert int(missing.headers["retry-after"]) > 0


def test_stale_copies_are_served_only_within_the_stale_if_error_window(world: World) -> None:
    cache = {
        "dir": str(world.cache_dir),
        "page_ttl": 0,
        "stale_while_revalidate": 0,
        "stale_if_error": 1,
    }
    with world.proxy(cache=cache) as base:
        assert httpx.get(f"{base}/simple/tinylib/").headers["x-cache"] == "MISS"
        world.mirror.page_faults.status = 503
        world.torch.page_faults.status = 503
        assert httpx.get(f"{base}/simple/tinylib/").headers["x-cache"] == "STALE"
        # Past the window: 503 (not 404, and not an old page forever).
        wait_for(lambda: httpx.get(f"{base}/simple/tinylib/").status_code == 503)


def test_a_404_is_remembered_briefly_but_errors_never_count_as_not_found(world: World) -> None:
    with world.proxy() as base:
        world.mirror.page_faults.status = 503
        assert httpx.get(f"{base}/simple/newpkg/").status_code == 503
        world.mirror.page_faults.status = None
        assert httpx.get(f"{base}/simple/newpkg/").status_code == 404  # now truly unknown
        asked = world.mirror.count("/simple/newpkg/")
        assert httpx.get(f"{base}/simple/newpkg/").status_code == 404
        assert world.mirror.count("/simple/newpkg/") == asked  # the 404 was cached


def test_retry_after_keeps_a_mirror_skipped_that_long(world: World) -> None:
    world.mirror.page_faults.status = 429
    world.mirror.page_faults.retry_after = 30
    with world.proxy() as base:
        assert httpx.get(f"{base}/simple/tinylib/").status_code == 503
        health = httpx.get(f"{base}/-/health").json()["upstreams"]["pypi"][0]
        assert health["state"] == "open" and health["last_error"] == "HTTP 429"
        assert health["next_probe_in_s"] >= 25
        world.mirror.page_faults.status = None
        assert httpx.get(f"{base}/simple/tinylib/").status_code == 503  # still skipped
        assert world.mirror.count("/simple/tinylib/") == 1


def test_requests_name_pypi_proxy_and_follow_redirects(world: World, tmp_path: Path) -> None:
    other = FakeUpstream("mirror")
    stock(other)
    with other.running() as other_url, world.proxy() as base:
        # This mirror sends a file it lacks to another mirror, as some do.
        path = world.mirror.file_url("", TINYLIB.filename)
        world.mirror.redirects[path] = other.file_url(other_url, TINYLIB.filename)
        response = httpx.get(f"{base}/files/tinylib/{TINYLIB.filename}")
        assert _sha256(response.content) == TINYLIB.sha256
        assert other.count(TINYLIB.filename) == 1
    agents = {r.headers.get("user-agent", "") for r in world.mirror.requests}
    assert agents and all(a.startswith("pypi-proxy/") for a in agents)


def test_with_the_first_mirror_hanging_the_circuit_keeps_an_install_fast(
    world: World, tmp_path: Path
) -> None:
    second = FakeUpstream("mirror")
    stock(second)
    timeout = 3.0
    with second.running() as second_url:
        world.more_mirrors.append(second.root_url(second_url))
        world.mirror.page_faults.hang = True
        with world.proxy(timeouts={"connect": 1, "first_byte": timeout, "stall": 5}) as base:
            started = time.monotonic()
            # Five index pages: tinyapp, tinylib, metapkg, tinydep, bigpkg.
            installed = install("pip", f"{base}/simple/", tmp_path, "tinyapp", "metapkg",
                                "tinydep", "bigpkg")  # fmt: skip
            took = time.monotonic() - started
    assert set(installed) == {"tinyapp", "tinylib", "metapkg", "tinydep", "bigpkg"}
    # A page it was asked for was hedged after about a second, counted against it and
    # measured: the second mirror, clearly faster, is asked first from then on (and after
    # three such losses at most, circuit.failures, its circuit would be open).
    assert 1 <= world.mirror.count(lambda r: r.kind == "page") <= 3
    print(f"\n5 pages, first mirror hanging, {timeout} s first-byte timeout: {took:.1f} s")
    assert took < 3 * timeout


def test_sigkill_during_a_download_leaves_nothing_that_is_ever_served(
    world: World, tmp_path: Path
) -> None:
    config = {"upstreams": {"pypi": {"mirrors": [world.mirror.root_url(world.mirror_url)]}}}
    cache = tmp_path / "cache"
    url = f"/files/bigpkg/{BIG.filename}"
    world.mirror.file_faults.drip = 0.05  # slow enough to be killed halfway

    with (
        proxy_process(config, tmp_path, cache_dir=cache) as (process, base),
        httpx.stream("GET", base + url, timeout=10) as response,
    ):
        chunks = response.iter_bytes()
        next(chunks)
        wait_for(lambda: any((cache / "tmp").glob("*.part")))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        with pytest.raises(httpx.HTTPError):
            for _ in chunks:
                pass
    assert list((cache / "tmp").glob("*.part"))  # what the killed process left behind
    assert not [p for p in (cache / "files").rglob("*") if p.is_file()]

    world.mirror.file_faults.drip = None
    with proxy_process(config, tmp_path, cache_dir=cache) as (_, base):
        assert not list((cache / "tmp").glob("*.part"))  # cleaned at start
        again = httpx.get(base + url, timeout=30)
        assert _sha256(again.content) == BIG.sha256
        wait_for(lambda: not list((cache / "tmp").glob("*.part")))  # committed
        assert httpx.get(base + url, timeout=30).headers["x-cache"] == "HIT"
    assert world.mirror.count(BIG.filename) == 2  # fetched again after the crash


def test_a_mirror_without_range_support_still_resumes(world: World, proxy: str) -> None:
    world.mirror.file_faults.no_range = True
    world.mirror.file_faults.cut_after = len(BIG.content) // 3
    world.mirror.file_faults.cut_times = 1
    response = httpx.get(f"{proxy}/files/bigpkg/{BIG.filename}", timeout=30)
    # The second answer is the whole file again; the proxy skips what it already has.
    assert _sha256(response.content) == BIG.sha256
    assert world.mirror.count(BIG.filename) == 2


def test_503_says_when_a_mirror_will_be_tried_again(world: World) -> None:
    world.mirror.page_faults.status = 503
    world.mirror.page_faults.retry_after = 20
    with world.proxy() as base:
        response = httpx.get(f"{base}/simple/tinylib/")
    assert response.status_code == 503
    assert 15 <= int(response.headers["retry-after"]) <= 20


def test_a_mirror_that_compresses_its_pages_is_used(tmp_path: Path) -> None:
    """nginx with `gzip on` compresses pages for clients that accept it; files are asked for
    uncompressed (they are read by byte offset and hashed as they come)."""
    mirror = FakeUpstream()
    stock(mirror)
    with serve(GZipMiddleware(mirror, minimum_size=100), lifespan="auto") as base:
        page = httpx.get(mirror.page_url(base, "tinylib"), headers={"Accept-Encoding": "gzip"})
        assert page.headers["content-encoding"] == "gzip"  # the mirror does compress
        config = parse_config({
            "cache": {"dir": str(tmp_path / "cache")},
            "upstreams": {"pypi": {"mirrors": [mirror.root_url(base)]}},
        })  # fmt: skip
        with serve(create_app(config)) as proxy:
            installed = install("pip", f"{proxy}/simple/", tmp_path / "pip", "tinyapp")
    assert installed == {"tinyapp": "1.0", "tinylib": "1.1"}
