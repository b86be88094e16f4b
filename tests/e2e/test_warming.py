"""Serving a wheel's core metadata warms what it requires: the dependencies' pages, the
metadata of the files the client will likely pick and the small files themselves, down the
tree; within the index's policy, a budget per request, and not at all when switched off."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from support.clients import install
from support.upstream import FakeUpstream
from support.waiting import wait_for
from support.wheels import make_wheel
from support.world import World

# app -> liba, libb; liba -> libc; and a dependency for Windows only, and one for an extra.
LIBC = make_wheel("libc", "2.0")
LIBA = make_wheel("liba", "1.0", requires=["libc>=2"])
LIBB = make_wheel("libb", "1.0")
ONLY_WINDOWS = make_wheel("winonly", "1.0")
APP = make_wheel(
    "app", "1.0",
    requires=["liba", "libb", 'winonly; sys_platform == "win32"', 'libb[x]; extra == "x"'],
)  # fmt: skip
PIP_ON_LINUX = "pip/25.3 " + json.dumps(
    {"python": "3.12.1", "system": {"name": "Linux"}, "cpu": "x86_64"}
)


def _stock(mirror: FakeUpstream) -> None:
    for dist in (LIBC, LIBA, LIBB, ONLY_WINDOWS, APP):
        mirror.add(dist, metadata=True)


def _pages_asked(mirror: FakeUpstream) -> list[str]:
    return [r.path for r in mirror.requests if r.kind == "page"]


def _metadata_asked(mirror: FakeUpstream) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in mirror.requests if r.path.endswith(".metadata")]


def _ask_for_app_metadata(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10, headers={"User-Agent": PIP_ON_LINUX}) as c:
        assert c.get("/simple/app/").status_code == 200
        assert c.get(f"/files/app/{APP.filename}.metadata").content == APP.metadata


def _counter(base: str, name: str, kind: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    found = re.search(rf'^{name}_total{{kind="{kind}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_dependencies_are_warmed_down_the_tree_before_the_client_asks(world: World) -> None:
    _stock(world.mirror)
    with world.proxy() as base:
        _ask_for_app_metadata(base)
        wanted = {f"{LIBC.filename}.metadata", f"{LIBA.filename}.metadata"}
        wait_for(lambda: wanted <= set(_metadata_asked(world.mirror)))
        wait_for(lambda: world.cached_files() >= {LIBA.sha256, LIBB.sha256, LIBC.sha256})
        pages = _pages_asked(world.mirror)
        # The client asked for app's page; the proxy asked for the rest, a level at a time.
        assert pages[0] == "/simple/app/"
        assert pages.index("/simple/liba/") < pages.index("/simple/libc/")
        assert "/simple/libb/" in pages
        # Not for Linux, or only with an extra nobody asked for: not warmed.
        assert "/simple/winonly/" not in pages and pages.count("/simple/libb/") == 1
        assert _counter(base, "pypi_proxy_prefetches", "page") == 3
        world.mirror.reset_log()
        with httpx.Client(base_url=base, timeout=10) as c:
            for dist in (LIBA, LIBB, LIBC):
                name = dist.project
                assert c.get(f"/simple/{name}/").headers["x-cache"] == "HIT"
                assert c.get(f"/files/{name}/{dist.filename}.metadata").status_code == 200
                assert c.get(f"/files/{name}/{dist.filename}").headers["x-cache"] == "HIT"
        assert world.mirror.requests == []  # everything the client asked for was there
        assert _counter(base, "pypi_proxy_prefetches_used", "page") == 3
        assert _counter(base, "pypi_proxy_prefetches_used", "metadata") == 3
        assert _counter(base, "pypi_proxy_prefetches_used", "file") == 3


def test_pip_install_of_a_warmed_tree_works(world: World, tmp_path: Path) -> None:
    _stock(world.mirror)
    with world.proxy() as base:
        installed = install("pip", f"{base}/simple/", tmp_path / "pip", "app")
        assert {"app", "liba", "libb", "libc"} <= set(installed)
        assert _counter(base, "pypi_proxy_prefetches_used", "page") >= 2


def test_a_project_the_policy_refuses_is_never_warmed(world: World) -> None:
    _stock(world.mirror)
    with world.proxy(policy={"deny": ["libb"]}) as base:
        _ask_for_app_metadata(base)
        wait_for(lambda: f"{LIBC.filename}.metadata" in _metadata_asked(world.mirror))
        assert "/simple/libb/" not in _pages_asked(world.mirror)


def test_one_request_warms_at_most_its_budget(world: World) -> None:
    _stock(world.mirror)
    with world.proxy(prefetch={"projects": 1}) as base:
        _ask_for_app_metadata(base)
        wait_for(lambda: "/simple/liba/" in _pages_asked(world.mirror))
        wait_for(lambda: f"{LIBA.filename}.metadata" in _metadata_asked(world.mirror))
        with httpx.Client(base_url=base, timeout=10) as c:  # let anything further show
            assert c.get("/simple/app/").status_code == 200
        assert not {"/simple/libb/", "/simple/libc/"} & set(_pages_asked(world.mirror))


def test_switched_off_nothing_is_warmed(world: World) -> None:
    _stock(world.mirror)
    with world.proxy(prefetch={"dependencies": False}) as base:
        _ask_for_app_metadata(base)
        with httpx.Client(base_url=base, timeout=10) as c:
            assert c.get("/simple/app/").status_code == 200
        assert _pages_asked(world.mirror) == ["/simple/app/"]
        assert _counter(base, "pypi_proxy_prefetches", "page") == 0
