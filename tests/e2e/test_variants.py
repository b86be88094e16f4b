"""Wheel variants (PEP 825, as PyTorch publishes them under /whl/variant/) through the proxy:
variant wheels and the version's variants.json are listed for every client, rewritten to the
proxy and served; pip and uv, which do not choose by variants, install the plain wheel as
they would without them; variants.json is verified when listed with a hash, and kept only
for a page's TTL when listed without one (more variants may be published later)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from support.clients import install
from support.upstream import FakeUpstream
from support.waiting import wait_for
from support.wheels import Dist, make_wheel
from support.world import World

PLAIN = make_wheel("vtorch", "2.9.0")
CUDA = dataclasses.replace(
    make_wheel("vtorch", "2.9.0", payload_size=2000),
    filename="vtorch-2.9.0-py3-none-any-cu128.whl",
)
NULL = dataclasses.replace(
    make_wheel("vtorch", "2.9.0", payload_size=3000),
    filename="vtorch-2.9.0-py3-none-any-null.whl",
)
LABELS = {"cu128": {"nvidia :: cuda_version_lower_bound": ["12.8"]}, "null": {}}
VARIANTS = Dist(
    "vtorch-2.9.0-variants.json",
    json.dumps({"variants": LABELS}).encode(),
    b"",
)
JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def variant_index(world: World) -> Iterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream("pytorch", prefix="/whl/variant")
    for dist in (PLAIN, CUDA, NULL):
        fake.add(dist)
    fake.add(VARIANTS, project="vtorch")
    with fake.running() as url:
        yield fake, fake.root_url(url)


def _proxy(world: World, root: str, **more: object) -> AbstractContextManager[str]:
    upstreams = {"variant": {"mirrors": [root]}}
    routes = [{"projects": ["*"], "upstreams": ["variant"]}]
    return world.proxy(upstreams=upstreams, routes=routes, **more)


def test_variant_files_are_listed_rewritten_and_served_and_clients_install_the_plain_wheel(
    world: World, variant_index: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, root = variant_index
    with _proxy(world, root) as base, httpx.Client(base_url=base, timeout=10) as client:
        for tool in ("pip", "uv"):
            assert install(tool, f"{base}/simple/", tmp_path / tool, "vtorch")["vtorch"] == "2.9.0"
        # Neither chooses by variants: both took the plain wheel, as without variant files.
        fetched = {r.path.rsplit("/", 1)[-1] for r in fake.requests if r.kind == "file"}
        assert fetched == {PLAIN.filename}
        page = client.get("/simple/vtorch/", headers={"Accept": JSON}).json()
        files = {f["filename"]: f for f in page["files"]}
        assert set(files) == {PLAIN.filename, CUDA.filename, NULL.filename, VARIANTS.filename}
        assert files[VARIANTS.filename]["url"] == f"../../files/vtorch/{VARIANTS.filename}"
        assert files[VARIANTS.filename]["hashes"] == {"sha256": VARIANTS.sha256}
        assert "core-metadata" not in files[VARIANTS.filename]  # not a wheel
        assert files[CUDA.filename]["core-metadata"]  # a wheel: its metadata is offered
        assert page["versions"] == ["2.9.0"]
        html = client.get("/simple/vtorch/").text
        assert f'href="../../files/vtorch/{VARIANTS.filename}#sha256={VARIANTS.sha256}"' in html
        assert f"/files/vtorch/{CUDA.filename}#sha256={CUDA.sha256}" in html
        served = client.get(f"/files/vtorch/{VARIANTS.filename}")
        assert served.status_code == 200 and served.content == VARIANTS.content
        wheel = client.get(f"/files/vtorch/{CUDA.filename}")
        assert wheel.content == CUDA.content
        metadata = client.get(f"/files/vtorch/{CUDA.filename}.metadata")
        assert metadata.status_code == 200 and metadata.content == CUDA.metadata
    cached = world.cached_files()  # (with the metadata the proxy read out of wheels)
    assert {PLAIN.sha256, CUDA.sha256, VARIANTS.sha256} <= cached and NULL.sha256 not in cached


def test_a_variants_file_that_does_not_match_its_listed_hash_is_never_served(
    world: World, variant_index: tuple[FakeUpstream, str]
) -> None:
    fake, root = variant_index
    fake.file_faults.corrupt = True
    with _proxy(world, root) as base, httpx.Client(base_url=base, timeout=10) as client:
        client.get("/simple/vtorch/")
        with pytest.raises(httpx.HTTPError):  # the last byte is held back, then the cut
            client.get(f"/files/vtorch/{VARIANTS.filename}")
        # A file that may change says as much of the page that listed it as of the mirror:
        # the mirror is not passed over for it, as it would be for a wheel.
        [mirror] = client.get("/-/health").json()["upstreams"]["variant"]
        assert mirror["state"] == "closed"
        fake.file_faults.corrupt = False
        assert client.get(f"/files/vtorch/{PLAIN.filename}").content == PLAIN.content
    assert VARIANTS.sha256 not in world.cached_files()


def test_a_variants_file_listed_without_a_hash_is_kept_for_a_page_s_ttl(
    world: World, variant_index: tuple[FakeUpstream, str]
) -> None:
    fake, root = variant_index
    path = "/whl/variant/" + VARIANTS.filename
    listing = f'<a href="{path}">{VARIANTS.filename}</a><br/>'
    wheel = f'<a href="/whl/variant/{PLAIN.filename}#sha256={PLAIN.sha256}">{PLAIN.filename}</a>'
    fake.add_raw_page("vtorch", f"<html><body>{wheel}{listing}</body></html>".encode(), "text/html")
    cache = {"dir": str(world.cache_dir), "page_ttl": 2}
    url = f"/files/vtorch/{VARIANTS.filename}"
    with _proxy(world, root, cache=cache) as base, httpx.Client(base_url=base, timeout=10) as c:
        assert _hashes(c)[VARIANTS.filename] == {}
        assert c.get(url).content == VARIANTS.content
        started = time.monotonic()
        more = json.dumps({"variants": {**LABELS, "cu130": {}}}).encode()
        fake.add_blob(path, more)  # a variant published later
        assert c.get(url).content == VARIANTS.content  # from the cache, within the TTL
        assert fake.count(path) == 1
        # The page the client sees still lists it without a hash: what may change is not pinned.
        assert _hashes(c)[VARIANTS.filename] == {}
        wait_for(lambda: c.get(url).content == more, seconds=10)
        assert time.monotonic() - started >= 1.5  # not before the TTL was up
        assert hashlib.sha256(more).hexdigest() in world.cached_files()


def _hashes(client: httpx.Client) -> dict[str, dict[str, str]]:
    page = client.get("/simple/vtorch/", headers={"Accept": JSON}).json()
    return {f["filename"]: f["hashes"] for f in page["files"]}
