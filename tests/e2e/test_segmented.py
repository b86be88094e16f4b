"""Big files fetched as several byte ranges at once, spread over the mirrors that list them:
verified as one file, a cut range moved on, a corrupt range repaired from the good mirror,
a mirror without Range left to one stream, and one download however many workers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.process import proxy_process
from support.upstream import FakeUpstream, RequestRecord
from support.wheels import Dist, make_wheel
from support.world import World, stock

# Not a multiple of 64 KiB, so no range boundary falls on the middle byte by chance.
HUGE = make_wheel("hugepkg", "1.0", payload_size=40 * 1024 * 1024 + 12345)
DOWNLOADS: dict[str, Any] = {"segments": 4, "segment_above": "8MiB"}
RATE = 16 * 1024 * 1024  # bytes a second each connection of the fake mirrors may send


@dataclass
class Two:
    world: World
    first: FakeUpstream
    second: FakeUpstream

    def file_requests(self, mirror: FakeUpstream) -> list[RequestRecord]:
        return [r for r in mirror.requests if r.path.endswith(HUGE.filename)]

    def ranged(self, mirror: FakeUpstream) -> int:
        return sum("range" in r.headers for r in self.file_requests(mirror))


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Two]:
    first, second, torch = FakeUpstream("mirror"), FakeUpstream("mirror"), FakeUpstream("pytorch")
    stock(first, torch)
    stock(second)
    for mirror in (first, second):
        mirror.add(HUGE)
        mirror.file_faults.rate = RATE
    with ExitStack() as stack:
        first_url = stack.enter_context(first.running())
        second_url = stack.enter_context(second.running())
        torch_url = stack.enter_context(torch.running())
        world = World(
            first, first_url, torch, torch_url, tmp_path / "cache",
            more_mirrors=[second.root_url(second_url)],
        )  # fmt: skip
        yield Two(world, first, second)


def _download(base: str, dist: Dist = HUGE) -> httpx.Response:
    """The file, read as a client streams it."""
    with httpx.Client(timeout=30) as client:
        url = f"{base}/files/{dist.project}/{dist.filename}"
        with client.stream("GET", url) as response:
            response.read()
            return response


def _sha256(response: httpx.Response) -> str:
    return hashlib.sha256(response.content).hexdigest()


def _proxy(two: Two, **overrides: Any) -> Any:
    return two.world.proxy(downloads=DOWNLOADS, **overrides)


def test_big_file_comes_as_ranges_from_both_mirrors_and_verifies(two: Two) -> None:
    with _proxy(two) as base:
        response = _download(base)
        assert response.headers["x-cache"] == "MISS"
        assert _sha256(response) == HUGE.sha256
        assert two.world.cached_files() >= {HUGE.sha256}
        # The first range is the plain GET; the others spread over both mirrors.
        assert two.ranged(two.first) >= 1 and two.ranged(two.second) >= 1
        requests = two.file_requests(two.first) + two.file_requests(two.second)
        assert sum("range" not in r.headers for r in requests) == 1
        # One download's worth of bytes in all (plus what sat in socket buffers when the
        # first response was closed at the end of its range).
        sent = sum(r.bytes_sent for r in requests)
        assert HUGE.size <= sent <= HUGE.size + 4 * 1024 * 1024
        again = _download(base)
        assert again.headers["x-cache"] == "HIT" and _sha256(again) == HUGE.sha256
        # What the ranges showed of each mirror's throughput (under its cap), for choosing.
        for mirror in httpx.get(f"{base}/-/health").json()["upstreams"]["pypi"]:
            assert 1 < mirror["throughput_mib_s"] <= RATE / 2**20 * 1.1, mirror
        gauge = "pypi_proxy_upstream_throughput_bytes_per_second{"
        assert httpx.get(f"{base}/metrics").text.count(gauge) == 2


def test_a_cut_range_is_taken_up_again_and_the_file_verifies(two: Two) -> None:
    for mirror in (two.first, two.second):
        mirror.file_faults.cut_after, mirror.file_faults.cut_times = 1024 * 1024, 1
    with _proxy(two) as base:
        response = _download(base)
        assert _sha256(response) == HUGE.sha256
        assert two.first.file_faults.cuts == two.second.file_faults.cuts == 1
        assert two.world.cached_files() >= {HUGE.sha256}


def test_a_corrupt_range_is_repaired_from_the_good_mirror_and_never_committed_wrong(
    two: Two,
) -> None:
    two.second.file_faults.corrupt = True  # the middle byte: in a range of the second's
    with _proxy(two) as base:
        with pytest.raises(httpx.HTTPError):  # this client got the bad bytes: cut short
            _download(base)
        assert two.world.cached_files() >= {HUGE.sha256}
        path = next((two.world.cache_dir / "files").rglob(HUGE.sha256))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == HUGE.sha256
        asked = len(two.file_requests(two.first)) + len(two.file_requests(two.second))
        again = _download(base)
        assert again.headers["x-cache"] == "HIT" and _sha256(again) == HUGE.sha256
        assert len(two.file_requests(two.first)) + len(two.file_requests(two.second)) == asked
        health = {m["url"]: m for m in httpx.get(f"{base}/-/health").json()["upstreams"]["pypi"]}
        second = health[two.world.more_mirrors[0]]
        assert "sha256" in (second["last_error"] or "")
        first = health[two.first.root_url(two.world.mirror_url)]
        assert "sha256" not in (first["last_error"] or "")


def test_a_mirror_without_range_leaves_the_file_to_one_stream(two: Two) -> None:
    two.first.file_faults.no_range = True  # no Accept-Ranges: nothing to split
    with _proxy(two) as base:
        assert _sha256(_download(base)) == HUGE.sha256
        assert len(two.file_requests(two.first)) == 1 and two.file_requests(two.second) == []


def test_a_mirror_that_ignores_range_requests_is_left_out(two: Two) -> None:
    two.second.file_faults.no_range = True  # answers a Range with the whole file
    with _proxy(two) as base:
        assert _sha256(_download(base)) == HUGE.sha256
        # Asked for the ranges it was given at first (every other one), then left out.
        assert len(two.file_requests(two.second)) <= DOWNLOADS["segments"] // 2
        assert two.ranged(two.first) >= 3


def test_segments_switched_off_fetch_one_stream(two: Two) -> None:
    with two.world.proxy(downloads={"segments": 1}) as base:
        assert _sha256(_download(base)) == HUGE.sha256
        assert len(two.file_requests(two.first)) == 1 and two.ranged(two.first) == 0


def test_many_clients_over_two_workers_make_one_segmented_download(
    two: Two, tmp_path: Path
) -> None:
    settings = two.world.settings(downloads=DOWNLOADS)
    with (
        proxy_process(settings, tmp_path, "--workers", "2") as (_, base),
        ThreadPoolExecutor(6) as pool,
    ):
        responses = list(pool.map(lambda _: _download(base), range(6)))
    assert {_sha256(r) for r in responses} == {HUGE.sha256}
    requests = two.file_requests(two.first) + two.file_requests(two.second)
    assert sum("range" not in r.headers for r in requests) == 1
    assert sum(r.bytes_sent for r in requests) <= HUGE.size + 4 * 1024 * 1024
