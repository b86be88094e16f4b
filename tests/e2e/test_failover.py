"""Installs keep working when a mirror fails: every way a mirror breaks, for index pages and
for files, with real pip and uv; the broken mirror's circuit opens, and closes once it heals."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.clients import install
from support.upstream import FakeUpstream
from support.waiting import wait_for
from support.world import TINYAPP, TINYLIB, WITH_METADATA, World, stock

WANTED = ["tinyapp", "metapkg"]
EXPECTED = {"tinyapp": "1.0", "tinylib": "1.1", "metapkg": "1.0"}
FILES = {TINYAPP.filename, TINYLIB.filename, WITH_METADATA.filename}
FAST = {
    "timeouts": {"connect": 1, "first_byte": 1, "stall": 2},
    "circuit": {"failures": 3, "probe_interval": 0.3, "max_probe_interval": 1},
}


@dataclass
class Pair:
    """The proxy over two mirrors of the official index: `first` (which the tests break) and
    `second`, both stocked alike, plus the PyTorch-like upstream."""

    world: World
    first: FakeUpstream
    second: FakeUpstream
    stop_first: Callable[[], None]
    restart_first: Callable[[], None]

    def health(self, base: str) -> list[dict[str, Any]]:
        report: list[dict[str, Any]] = httpx.get(f"{base}/-/health").json()["upstreams"]["pypi"]
        return report


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    first, second, torch = FakeUpstream("mirror"), FakeUpstream("mirror"), FakeUpstream("pytorch")
    stock(first, torch)
    stock(second)
    with ExitStack() as stack:
        second_url = stack.enter_context(second.running())
        torch_url = stack.enter_context(torch.running())
        running = ExitStack()
        first_url = running.enter_context(first.running())
        port = int(first_url.rsplit(":", 1)[1])
        stack.callback(running.close)
        world = World(
            first, first_url, torch, torch_url, tmp_path / "cache",
            more_mirrors=[second.root_url(second_url)],
        )  # fmt: skip

        def restart_first() -> None:
            running.enter_context(first.running(port=port))

        yield Pair(world, first, second, running.close, restart_first)


def _break(pair: Pair, fault: str, target: str, base: str) -> None:
    faults = pair.first.page_faults if target == "page" else pair.first.file_faults
    if fault == "refused":
        if target == "file":  # the pages come from the first mirror; then it goes away
            for project in ("tinyapp", "tinylib", "metapkg"):
                assert httpx.get(f"{base}/simple/{project}/").status_code == 200
        pair.stop_first()
    elif fault == "503":
        faults.status, faults.retry_after = 503, 1
    elif fault == "hang":
        faults.hang = True
    elif fault == "cut":
        faults.cut_after = 100 if target == "page" else 300
    elif fault == "corrupt":
        faults.corrupt = True
    elif fault == "lagging":  # 404 for what it lists (files) or what exists (pages)
        faults.missing = FILES | {n + ".metadata" for n in FILES} if target == "file" else {
            "tinyapp", "tinylib", "metapkg"
        }  # fmt: skip


def _heal(pair: Pair, fault: str) -> None:
    if fault == "refused":
        pair.restart_first()
    pair.first.reset_faults()


@pytest.mark.parametrize("client", ["pip", "uv"])
@pytest.mark.parametrize("target", ["page", "file"])
@pytest.mark.parametrize("fault", ["refused", "503", "hang", "cut", "corrupt", "lagging"])
def test_installs_succeed_through_the_second_mirror(
    pair: Pair, fault: str, target: str, client: str, tmp_path: Path
) -> None:
    with pair.world.proxy(**FAST) as base:
        _break(pair, fault, target, base)
        assert install(client, f"{base}/simple/", tmp_path / client, *WANTED) == EXPECTED
        # What the proxy cached verified against the listed sha256: it is named by it.
        assert {TINYAPP.sha256, TINYLIB.sha256} <= pair.world.cached_files()
        assert pair.second.count(lambda r: r.kind == target) > 0

        first = pair.health(base)[0]
        if fault == "lagging":  # a lagging mirror is healthy, just behind
            assert first["state"] == "closed"
            return
        assert first["state"] == "open", first
        assert first["last_error"]

        _heal(pair, fault)

        # Once its probe is due, the next request that needs the mirror tries it again: ask
        # for pages nobody has asked for (so none is cached) until one has.
        unasked = (f"never-asked-{n}" for n in itertools.count())

        def probed_and_closed() -> bool:
            assert httpx.get(f"{base}/simple/{next(unasked)}/").status_code in (404, 503)
            return bool(pair.health(base)[0]["state"] == "closed")

        wait_for(probed_and_closed)
        assert httpx.get(f"{base}/simple/tinydep/").status_code == 200


def test_a_mirror_that_never_answers_costs_a_hedge_delay_not_the_timeout(
    pair: Pair, tmp_path: Path
) -> None:
    """The bundled first-byte timeout (30 s) stays the last resort: pages and files come from
    the second mirror once the first has been slow for about a second."""
    pair.first.page_faults.hang = True
    pair.first.file_faults.hang = True
    with pair.world.proxy(timeouts={"connect": 10, "first_byte": 30, "stall": 60}) as base:
        started = time.monotonic()
        assert install("pip", f"{base}/simple/", tmp_path / "pip", "tinyapp") == {
            "tinyapp": "1.0",
            "tinylib": "1.1",
        }
        took = time.monotonic() - started
        hedges = httpx.get(f"{base}/metrics").text
    assert took < 15, took  # two pages, a hedge delay each; a timeout would be 60 s
    assert 'pypi_proxy_upstream_hedges_total{mirror="' in hedges


BUNDLED_TIMEOUTS = {"timeouts": {"connect": 10, "first_byte": 30, "stall": 60}}


def _hedges(base: str) -> str:
    return "".join(
        line for line in httpx.get(f"{base}/metrics").text.splitlines(keepends=True)
        if line.startswith("pypi_proxy_upstream_hedges_total{")
    )  # fmt: skip


def test_a_mirror_whose_files_hang_costs_a_hedge_delay_not_the_timeout(
    pair: Pair, tmp_path: Path
) -> None:
    """Its pages answer (so its links are the ones listed), its files and metadata never do:
    each file's first response, and each read of a wheel's metadata by ranges, goes to the
    second mirror once the first has been slow for its hedge delay."""
    pair.first.file_faults.hang = True
    with pair.world.proxy(**BUNDLED_TIMEOUTS) as base:
        started = time.monotonic()
        assert install("pip", f"{base}/simple/", tmp_path / "pip", "tinyapp") == {
            "tinyapp": "1.0",
            "tinylib": "1.1",
        }
        took = time.monotonic() - started
        hedges = _hedges(base)
    assert took < 15, took  # a hedge delay or two per file; a timeout would be 30 s each
    assert pair.first.root_url(pair.world.mirror_url) in hedges
    assert {TINYAPP.sha256, TINYLIB.sha256} <= pair.world.cached_files()
    assert pair.second.count(TINYAPP.filename, method="GET") >= 1


def test_a_slow_but_working_mirror_is_not_hedged_for_files(pair: Pair, tmp_path: Path) -> None:
    pair.first.file_faults.delay = 0.3  # slower than usual, within the cold hedge delay (1 s)
    with pair.world.proxy(**BUNDLED_TIMEOUTS) as base:
        assert install("pip", f"{base}/simple/", tmp_path / "pip", "tinyapp")["tinyapp"] == "1.0"
        assert _hedges(base) == ""
    assert pair.second.count(lambda r: r.kind == "file") == 0
    assert pair.first.count(TINYAPP.filename, method="GET") >= 1
