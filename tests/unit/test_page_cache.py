"""Page freshness, on an injected clock: fresh for the TTL, then served stale while one
refresh runs behind, and when every mirror fails served stale within `stale_if_error`; what
an upstream that cannot answer means for routing; pages kept across restarts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from proxy.core.config import Config, Upstream
from proxy.core.config_yaml import parse_config
from proxy.core.model import CacheResult, FileLink, NormalizedName, ProjectPage
from proxy.core.policy import Screened
from proxy.core.render import Format
from proxy.server.errors import UpstreamError
from proxy.server.index_db import IndexDB
from proxy.server.page_entries import ProjectFound
from proxy.server.pages import PageCache
from proxy.server.screening import PageScreen

pytestmark = pytest.mark.anyio
NAME = NormalizedName("demo")
HIT, MISS, STALE = CacheResult.HIT, CacheResult.MISS, CacheResult.STALE
TTL, SWR, SIE = 600, 3600, 86400  # page_ttl, stale_while_revalidate, stale_if_error


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """Upstream pages as the test sets them: a page, None (no such project), or an error."""

    def __init__(self) -> None:
        self.pages: dict[str, ProjectPage | Exception | None] = {}
        self.asked: list[str] = []
        self.gate: asyncio.Event | None = None

    async def project_page(self, upstream: Upstream, name: NormalizedName) -> ProjectPage | None:
        self.asked.append(upstream.name)
        if self.gate is not None:
            await self.gate.wait()
        answer = self.pages.get(upstream.name)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def project_names(self, upstream: Upstream) -> set[NormalizedName]:
        self.asked.append(f"root {upstream.name}")
        return {NormalizedName(f"from-{upstream.name}")}


def page(*filenames: str) -> ProjectPage:
    return ProjectPage(NAME, tuple(FileLink(f, f"https://m.test/{f}") for f in filenames))


def config(tmp_path: Path, strategy: str = "first", **cache: Any) -> Config:
    return parse_config(
        {
            "cache": {"dir": str(tmp_path), "page_ttl": TTL, "stale_while_revalidate": SWR,
                      "stale_if_error": SIE, **cache},
            "upstreams": {"a": {"mirrors": ["https://a.test/"]},
                          "b": {"mirrors": ["https://b.test/"]}},
            "routes": [{"projects": ["*"], "upstreams": ["a", "b"], "strategy": strategy}],
        }
    )  # fmt: skip


@dataclass
class Cache:
    """A page cache over a source and a clock the test controls."""

    db: IndexDB
    config: Config
    clock: Clock
    source: Source

    def __post_init__(self) -> None:
        self.pages = PageCache(self.config, self.db, self.source, self.clock)

    async def project(self, max_age: float | None = None) -> ProjectFound | None:
        return await self.pages.project(self.config.index(), NAME, max_age=max_age)

    async def answer(self) -> CacheResult:
        """How the project's page is served now."""
        found = await self.project()
        assert found is not None
        return found.cache

    async def refreshed(self) -> None:
        """Once the refresh running behind has stored its page."""
        while (found := await self.project()) is None or found.cache is not HIT:
            await asyncio.sleep(0.01)

    def restarted(self) -> Cache:
        """A new process on the same database: nothing in memory."""
        return Cache(self.db, self.config, self.clock, self.source)


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[Cache]:
    db = IndexDB(tmp_path)
    made = Cache(db, config(tmp_path), Clock(), Source())
    made.source.pages["a"] = page("demo-1.0.tar.gz")
    with anyio.fail_after(5):
        yield made
    await made.pages.aclose()
    db.close()


async def test_fresh_for_the_ttl(cache: Cache) -> None:
    assert await cache.answer() is MISS
    cache.clock.now += TTL - 1
    assert await cache.answer() is HIT
    assert cache.source.asked == ["a"]


async def test_then_stale_at_once_while_one_refresh_runs_behind(cache: Cache) -> None:
    await cache.project()
    cache.source.pages["a"] = page("demo-1.0.tar.gz", "demo-2.0.tar.gz")
    cache.source.gate = asyncio.Event()  # the refresh is held until the test lets it go
    cache.clock.now += TTL + 1
    stale = await cache.project()
    assert stale is not None and stale.cache is STALE and len(stale.value.files) == 1
    assert await cache.answer() is STALE
    await asyncio.sleep(0.01)
    assert cache.source.asked == ["a", "a"]  # two stale answers, one refresh
    cache.source.gate.set()
    await cache.refreshed()
    fresh = await cache.project()
    assert fresh is not None and len(fresh.value.files) == 2
    assert cache.source.asked == ["a", "a"]


async def test_past_stale_while_revalidate_the_client_waits_for_a_fresh_page(
    cache: Cache,
) -> None:
    await cache.project()
    cache.clock.now += TTL + SWR + 1
    assert await cache.answer() is MISS


async def test_with_the_upstream_down_a_copy_is_served_within_stale_if_error(
    cache: Cache,
) -> None:
    await cache.project()
    cache.source.pages["a"] = UpstreamError("every mirror is down")
    cache.clock.now += TTL + SWR + 1  # no more revalidating behind: the answer waits
    assert await cache.answer() is STALE
    cache.clock.now = 1_000_000.0 + TTL + SIE + 1
    with pytest.raises(UpstreamError, match="every mirror is down"):
        await cache.project()


async def test_no_such_project_is_remembered_for_a_minute(cache: Cache) -> None:
    cache.source.pages.clear()  # neither upstream has it
    assert await cache.project() is None
    cache.clock.now += 59
    assert await cache.project() is None
    assert cache.source.asked == ["a", "b"]
    cache.clock.now += 2
    cache.source.pages["a"] = page("demo-1.0.tar.gz")  # published meanwhile
    # Still "no such project" once, as a stale answer, while it is asked again behind.
    assert await cache.project() is None
    while "a" not in cache.source.asked[2:]:
        await asyncio.sleep(0)
    await cache.refreshed()


async def test_an_upstream_that_cannot_answer_is_not_replaced_by_the_next(
    cache: Cache,
) -> None:
    cache.source.pages["a"] = UpstreamError("a: every mirror is down")
    cache.source.pages["b"] = page("demo-9.9.tar.gz")  # a look-alike further down the route
    with pytest.raises(UpstreamError):
        await cache.project()
    assert cache.source.asked == ["a"]


async def test_first_takes_the_first_upstream_that_has_it_union_merges(
    cache: Cache, tmp_path: Path
) -> None:
    cache.source.pages["b"] = page("demo-1.0.tar.gz", "demo-2.0.tar.gz")
    first = await cache.project()
    assert first is not None and [u.name for u, _ in first.origins] == ["a"]
    union = Cache(cache.db, config(tmp_path, "union"), cache.clock, cache.source)
    merged = await union.project()
    assert merged is not None
    assert [f.filename for f in merged.value.files] == ["demo-1.0.tar.gz", "demo-2.0.tar.gz"]
    assert [
        o.upstream.name for o in map(merged.origin, ["demo-1.0.tar.gz", "demo-2.0.tar.gz"]) if o
    ] == ["a", "b"]
    assert merged.origin("nope.tar.gz") is None


async def test_concurrent_requests_share_one_fetch(cache: Cache) -> None:
    cache.source.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(cache.project()) for _ in range(8)]
    await asyncio.sleep(0.01)
    cache.source.gate.set()
    results = await asyncio.gather(*waiting)
    assert all(r is not None and r.value.file("demo-1.0.tar.gz") for r in results)
    assert cache.source.asked == ["a"]


async def test_pages_survive_a_restart_and_max_age_overrides_the_ttl(cache: Cache) -> None:
    await cache.project()
    restarted = cache.restarted()
    cache.clock.now += 10 * 86400
    old = await restarted.project(max_age=float("inf"))
    assert old is not None and old.cache is HIT and cache.source.asked == ["a"]
    forced = await restarted.project(max_age=0)
    assert forced is not None and forced.cache is MISS and cache.source.asked == ["a", "a"]


async def test_a_learned_hash_is_rendered_into_the_page(cache: Cache) -> None:
    cache.source.pages["a"] = page("demo-1.0-py3-none-any.whl")
    found = await cache.project()
    assert found is not None
    before = (await cache.pages.rendered(found, Format.JSON)).body.body
    cache.db.learn("sha256", "https://m.test/demo-1.0-py3-none-any.whl", "ab" * 32)
    after = (await cache.pages.rendered(found, Format.JSON)).body.body
    assert b"ab" * 32 not in before and b'"sha256":"' + b"ab" * 32 + b'"' in after


async def test_the_root_lists_every_upstream_s_names(cache: Cache) -> None:
    found = await cache.pages.project_list(cache.config.index())
    assert found.value == {"from-a", "from-b"} and found.cache is MISS


async def test_pages_kept_in_memory_are_bounded_by_bytes(tmp_path: Path) -> None:
    data = {
        "cache": {"dir": str(tmp_path)},
        "limits": {"page_memory": "300KB"},
        "upstreams": {"a": {"mirrors": ["https://a.test/"]}},
    }
    cfg, db, source = parse_config(data), IndexDB(tmp_path), Source()
    source.pages["a"] = page(*(f"demo-{n}.0.tar.gz" for n in range(100)))
    pages = PageCache(cfg, db, source, Clock())
    with anyio.fail_after(10):
        for n in range(20):
            found = await pages.project(cfg.index(), NormalizedName(f"p{n}"))
            assert found is not None
            await pages.rendered(found, Format.JSON)
            await pages.rendered(found, Format.HTML)
        held = pages.memory()
        first = await pages.project(cfg.index(), NormalizedName("p0"))  # from disk again
    assert found is not None and found.entry.weight > 60_000 and held <= 300_000
    assert first is not None and source.asked == ["a"] * 20
    db.close()


async def test_renders_for_several_policies_are_kept_side_by_side(cache: Cache) -> None:
    """Two indexes with their own policies share an upstream's page: neither may throw
    away the other's render (each would be rendered again on every request)."""
    cache.source.pages["a"] = page("demo-1.0.tar.gz", "demo-2.0.tar.gz")
    found = await cache.project()
    assert found is not None
    only_one = PageScreen(
        key="strict", version=1, screen=lambda p: Screened(replace(p, files=p.files[:1]), Counter())
    )
    strict = await cache.pages.rendered(found, Format.JSON, only_one)
    plain = await cache.pages.rendered(found, Format.JSON)
    assert b"demo-2.0" not in strict.body.body and b"demo-2.0" in plain.body.body
    assert await cache.pages.rendered(found, Format.JSON, only_one) is strict
    assert await cache.pages.rendered(found, Format.JSON) is plain
