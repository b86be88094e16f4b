"""The app in process (httpx's ASGI transport, which buffers whole bodies: nothing about
streaming or concurrency here), its upstreams an `httpx.MockTransport`: names, formats and
redirects; a file fetched once, verified, then served from disk; metadata read from the
wheel's end; what is not listed is not served; the proxy's own pages."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from support.mock_net import file_response
from support.wheels import Dist, make_wheel

from proxy import create_app
from proxy.core.config import Config
from proxy.core.config_yaml import parse_config
from proxy.server import status_views

pytestmark = pytest.mark.anyio

JSON = "application/vnd.pypi.simple.v1+json"
WHEEL = make_wheel("demo", "1.0", requires=["dep"], payload_size=200_000)
MIRROR = "https://m.test/simple/"


class Upstream:
    """One mirror of the official index: a project page per dist, files by URL, Range on files."""

    def __init__(self, *dists: Dist) -> None:
        self.dists = {d.filename: d for d in dists}
        self.requests: list[httpx.Request] = []
        self.corrupt = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        if url == f"{MIRROR}demo/":
            files = [
                {"filename": f, "url": f"../../packages/{f}", "hashes": {"sha256": d.sha256}}
                for f, d in self.dists.items()
            ]
            return httpx.Response(200, json={"meta": {"api-version": "1.1"}, "files": files})
        dist = self.dists.get(url.rsplit("/", 1)[-1])
        if dist is None or "/packages/" not in url:
            return httpx.Response(404)
        data = bytearray(dist.content)
        if self.corrupt:
            data[len(data) // 2] ^= 0xFF
        return file_response(request, bytes(data))

    def files_asked(self) -> list[str | None]:
        return [r.headers.get("range") for r in self.requests if "/packages/" in r.url.path]


def config(tmp_path: Path, **cache: Any) -> Config:
    return parse_config(
        {
            "cache": {"dir": str(tmp_path / "cache"), "min_free": 0, **cache},
            "upstreams": {"pypi": {"mirrors": [MIRROR]}},
            "indexes": {
                "main": {"routes": [{"projects": ["*"], "upstreams": ["pypi"]}]},
                "other": {"routes": [{"projects": ["*"], "upstreams": ["pypi"]}]},
            },
        }
    )


@asynccontextmanager
async def app_client(
    config: Config, handler: Callable[[httpx.Request], httpx.Response]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, its lifespan running; every request bounded in time."""
    app = create_app(config, transport=httpx.MockTransport(handler))
    with anyio.fail_after(10):
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as c:
                yield c


@pytest.fixture
def upstream() -> Upstream:
    return Upstream(WHEEL)


@pytest.fixture
async def client(tmp_path: Path, upstream: Upstream) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(config(tmp_path), upstream.handle) as c:
        yield c


def stored_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "cache" / "files").rglob("*") if p.is_file()]


async def test_names_are_normalized_with_a_301_and_the_index_prefix_kept(
    client: httpx.AsyncClient,
) -> None:
    for path, location in [
        ("/simple/Demo/", "/simple/demo/"),
        ("/simple/demo", "/simple/demo/"),
        ("/main/simple/DEMO", "/main/simple/demo/"),
        ("/main/simple", "/main/simple/"),
    ]:
        response = await client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (301, location), path
    assert (await client.get("/simple/bad%20name/")).status_code == 404
    assert (await client.get("/nosuch/simple/demo/")).status_code == 404


async def test_a_page_in_the_format_asked_with_an_etag(client: httpx.AsyncClient) -> None:
    page = await client.get("/simple/demo/", headers={"Accept": JSON})
    assert page.status_code == 200 and page.headers["content-type"] == JSON
    assert page.headers["vary"] == "Accept" and page.headers["x-cache"] == "MISS"
    (entry,) = page.json()["files"]
    assert entry["url"] == f"../../files/demo/{WHEEL.filename}"
    assert entry["core-metadata"] is True  # offered for every wheel
    again = await client.get(
        "/simple/demo/", headers={"Accept": JSON, "If-None-Match": page.headers["etag"]}
    )
    assert again.status_code == 304 and again.headers["x-cache"] == "HIT"
    html = await client.get("/simple/demo/")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert (await client.get("/simple/demo/", headers={"Accept": "image/png"})).status_code == 406


async def test_a_file_is_fetched_once_verified_then_served_from_disk(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    url = f"/files/demo/{WHEEL.filename}"
    first = await client.get(url)
    assert first.content == WHEEL.content and first.headers["x-cache"] == "MISS"
    second = await client.get(url, headers={"Range": "bytes=10-19"})
    assert second.status_code == 206 and second.content == WHEEL.content[10:20]
    assert second.headers["x-cache"] == "HIT" and second.headers["etag"] == f'"{WHEEL.sha256}"'
    assert "immutable" in second.headers["cache-control"]
    assert upstream.files_asked() == [None]  # one download, nothing more


async def test_a_corrupt_download_is_never_kept(tmp_path: Path, upstream: Upstream) -> None:
    upstream.corrupt = True
    async with app_client(config(tmp_path), upstream.handle) as client:
        # A small file is held back until verified: the answer can still say what went wrong.
        response = await client.get(f"/files/demo/{WHEEL.filename}")
        assert response.status_code == 503 and "sha256 mismatch" in response.text
    assert stored_files(tmp_path) == []


async def test_metadata_is_read_from_the_wheel_s_end(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    metadata = await client.get(f"/files/demo/{WHEEL.filename}.metadata")
    assert metadata.content == WHEEL.metadata
    assert upstream.files_asked() == ["bytes=-262144"]  # the end of the wheel, not all of it
    page = (await client.get("/simple/demo/", headers={"Accept": JSON})).json()
    assert page["files"][0]["core-metadata"] == {"sha256": WHEEL.metadata_sha256}  # learned


async def test_only_files_the_page_lists_are_served(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    for path in (
        "/files/demo/demo-9.9-py3-none-any.whl",
        "/files/demo/..%2F..%2Fetc%2Fpasswd",
        "/files/demo/demo-1.0.tar.gz.metadata",
        "/files/Not%20A%20Name/x.whl",
    ):
        assert (await client.get(path)).status_code == 404, path
    assert upstream.files_asked() == []


async def test_with_no_room_a_file_passes_through_uncached(
    tmp_path: Path, upstream: Upstream
) -> None:
    async with app_client(config(tmp_path, min_free="1000TB"), upstream.handle) as client:
        response = await client.get(f"/files/demo/{WHEEL.filename}")
    assert response.headers["x-cache"] == "PASS" and response.content == WHEEL.content
    assert hashlib.sha256(response.content).hexdigest() == WHEEL.sha256
    assert stored_files(tmp_path) == []


async def test_an_upstream_that_fails_is_a_503_with_retry_after(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "30"})

    async with app_client(config(tmp_path), down) as client:
        response = await client.get("/simple/demo/")
        assert response.status_code == 503 and response.headers["retry-after"] == "30"
        assert "https://m.test/simple/: HTTP 503" in response.text
        health = (await client.get("/-/health")).json()
    assert health["status"] == "degraded"
    assert health["upstreams"]["pypi"][0]["state"] == "open"


async def test_the_proxy_s_own_pages(client: httpx.AsyncClient) -> None:
    await client.get("/simple/demo/")
    health = await client.get("/-/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    status = await client.get("/")
    # The default index at /simple/, the others under their name.
    assert "<code>http://proxy.test/simple/</code>" in status.text
    assert "<code>http://proxy.test/other/simple/</code>" in status.text
    metrics = (await client.get("/metrics")).text
    assert 'pypi_proxy_requests_total{route="/simple/{project}/",status="200"} 1.0' in metrics
    assert json.loads(health.text)["upstreams"]["pypi"][0]["url"] == MIRROR


async def test_a_doubled_slash_is_redirected_to_the_single_slash_path(
    client: httpx.AsyncClient,
) -> None:
    for path, single in [("/simple//demo/", "/simple/demo/"),
                         ("/other//simple///demo/?x=1", "/other/simple/demo/?x=1")]:  # fmt: skip
        answer = await client.get(path)
        assert (answer.status_code, answer.headers["location"]) == (301, single)
    assert (await client.get("/simple/demo/")).status_code == 200


async def test_the_setup_script_for_the_host_the_request_named(client: httpx.AsyncClient) -> None:
    script = await client.get("/setup.py", headers={"host": "10.0.0.5:3141"})
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/x-python")
    assert "SERVED: Served = {'base': 'http://10.0.0.5:3141', 'profiles': [{'name': 'main'," in (
        script.text
    )
    pinned = await client.get("/other/setup.py", headers={"X-Forwarded-Host": "evil.test"})
    assert "'base': 'http://proxy.test'" in pinned.text and "'pinned': 'other'" in pinned.text
    bad = await client.get("/setup.py", headers={"host": "x');import os;('"})
    assert bad.status_code == 400 and "Host header" in bad.text
    unknown = await client.get("/nope/setup.py")
    assert unknown.status_code == 404
    assert "no index named 'nope' (known: main, other)" in unknown.text
    assert (await client.get("/simple/setup.py")).status_code == 301  # a project's name, as before


async def test_the_status_page_opened_on_the_proxy_s_own_machine_shows_its_lan_address(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status_views, "reachable_addresses", lambda: ["10.0.0.5", "172.17.0.1"])
    for local in ("http://localhost:3141/", "http://127.0.0.1:3141/", "http://[::1]:3141/"):
        status = await client.get(local)
        assert "<code>http://10.0.0.5:3141/simple/</code>" in status.text, local
    # Opened from another machine: the address that browser used, which works.
    assert "<code>http://proxy.test/simple/</code>" in (await client.get("/")).text
    monkeypatch.setattr(status_views, "reachable_addresses", lambda: [])  # no LAN at all
    assert (
        "<code>http://localhost:3141/simple/</code>"
        in (await client.get("http://localhost:3141/")).text
    )


async def test_made_up_names_cost_upstream_requests_only_once_in_a_while(
    client: httpx.AsyncClient, upstream: Upstream
) -> None:
    def pages_asked(project: str) -> int:
        return sum(1 for r in upstream.requests if r.url.path == f"/simple/{project}/")

    for n in range(20):
        assert (await client.get(f"/files/demo/demo-9.{n}-py3-none-any.whl")).status_code == 404
        assert (await client.get(f"/files/nosuch/nosuch-{n}.0.tar.gz")).status_code == 404
        assert (await client.get("/simple/nosuch/")).status_code == 404
    assert pages_asked("demo") == 1  # listed once; relisted at most once per interval
    assert pages_asked("nosuch") == 1  # "no such project" is remembered for a while


class Stream:
    """What httpx's network stream tells of the address it connected to."""

    def __init__(self, address: str) -> None:
        self.address = address

    def get_extra_info(self, name: str) -> object:
        return (self.address, 443) if name == "server_addr" else None


def elsewhere(mirror_at: str, file_at: str) -> Callable[[httpx.Request], httpx.Response]:
    """A mirror (answering from `mirror_at`) whose page links the wheel on another host (which
    answers from `file_at`)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "m.test":
            files = [{"filename": WHEEL.filename, "url": f"https://cdn.test/{WHEEL.filename}",
                      "hashes": {"sha256": WHEEL.sha256}}]  # fmt: skip
            document = {"meta": {"api-version": "1.1"}, "files": files}
            stream = {"network_stream": Stream(mirror_at)}
            return httpx.Response(200, json=document, extensions=stream)
        response = file_response(request, WHEEL.content)
        response.extensions["network_stream"] = Stream(file_at)
        return response

    return handle


@pytest.mark.parametrize(
    ("mirror_at", "file_at", "allow", "served"),
    [
        ("104.16.0.1", "169.254.169.254", False, False),  # a cloud's metadata service
        ("104.16.0.1", "10.1.2.3", False, False),
        ("104.16.0.1", "::ffff:127.0.0.1", False, False),
        ("104.16.0.1", "151.101.0.223", False, True),  # a CDN: fine
        ("10.0.0.2", "10.1.2.3", False, True),  # a lab's mirror, links in the lab
        ("104.16.0.1", "10.1.2.3", True, True),  # links.allow_private
    ],
)
async def test_links_into_the_network_are_refused_without_failing_the_mirror(
    tmp_path: Path, mirror_at: str, file_at: str, allow: bool, served: bool
) -> None:
    settings = config(tmp_path)
    settings = dataclasses.replace(settings, allow_private_links=allow)
    async with app_client(settings, elsewhere(mirror_at, file_at)) as client:
        response = await client.get(f"/files/demo/{WHEEL.filename}")
        assert (response.status_code == 200) is served
        if not served:
            assert response.status_code == 503 and "refused" in response.text
        (mirror,) = (await client.get("/-/health")).json()["upstreams"]["pypi"]
    assert mirror["consecutive_failures"] == 0


async def test_a_file_larger_than_the_cache_passes_through_and_evicts_nothing(
    tmp_path: Path,
) -> None:
    big = make_wheel("demo", "2.0", payload_size=1_500_000)
    upstream = Upstream(WHEEL, big)
    sizes = {WHEEL.filename: WHEEL.size, big.filename: big.size}

    def listed_with_sizes(request: httpx.Request) -> httpx.Response:
        response = upstream.handle(request)
        if request.url.path == "/simple/demo/":
            document = json.loads(response.content)
            for entry in document["files"]:
                entry["size"] = sizes[entry["filename"]]
            return httpx.Response(200, json=document)
        return response

    async with app_client(config(tmp_path, max_size="1MB"), listed_with_sizes) as client:
        assert (await client.get(f"/files/demo/{WHEEL.filename}")).headers["x-cache"] == "MISS"
        kept = stored_files(tmp_path)
        response = await client.get(f"/files/demo/{big.filename}")
        assert response.headers["x-cache"] == "PASS" and response.content == big.content
    assert stored_files(tmp_path) == kept  # the small wheel is still there


class Hops:
    """A public mirror whose page links the wheel at `first`; `redirects` sends a URL on.
    Every request is recorded, so a test can tell what was never sent."""

    def __init__(self, first: str, redirects: dict[str, str] | None = None) -> None:
        self.first, self.redirects = first, redirects or {}
        self.sent: list[str] = []
        self.mirror_at = "104.16.0.1"

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.sent.append(url)
        if request.url.host == "m.test":
            files = [{"filename": WHEEL.filename, "url": self.first,
                      "hashes": {"sha256": WHEEL.sha256}}]  # fmt: skip
            document = {"meta": {"api-version": "1.1"}, "files": files}
            return httpx.Response(
                200, json=document, extensions={"network_stream": Stream(self.mirror_at)}
            )
        if url in self.redirects:
            return httpx.Response(302, headers={"Location": self.redirects[url]})
        return file_response(request, WHEEL.content)


async def test_an_inner_address_is_never_sent_to_not_even_after_a_redirect(
    tmp_path: Path,
) -> None:
    for hops in (
        Hops("http://169.254.169.254/latest/meta-data/demo.whl"),
        Hops("https://cdn.test/demo.whl", {"https://cdn.test/demo.whl": "http://10.9.8.7/x.whl"}),
    ):
        async with app_client(config(tmp_path), hops.handle) as client:
            response = await client.get(f"/files/demo/{WHEEL.filename}")
        assert response.status_code == 503 and "refused" in response.text
        assert not any("169.254" in url or "10.9.8.7" in url for url in hops.sent)


async def test_a_mirror_that_later_answers_from_inside_is_refused(tmp_path: Path) -> None:
    hops = Hops("https://cdn.test/demo.whl")
    settings = config(tmp_path, page_ttl=0, stale_while_revalidate=0)
    async with app_client(settings, hops.handle) as client:
        assert (await client.get("/simple/demo/")).status_code == 200
        hops.mirror_at = "10.0.0.9"  # its name now leads inward: rebound
        response = await client.get("/simple/demo/", headers={"Accept": JSON})
    assert response.headers["x-cache"] == "STALE"  # the copy it had: the new answer refused
    assert hops.sent.count("https://m.test/simple/demo/") == 2


async def test_a_lab_mirror_named_by_address_may_link_into_the_lab_from_the_first_request(
    tmp_path: Path,
) -> None:
    """Its page from the cache, nothing asked of it since the start: the address in its URL
    says it is inside."""
    lab = "http://10.0.0.2/simple/"

    def handle(request: httpx.Request) -> httpx.Response:
        if str(request.url) == f"{lab}demo/":
            files = [{"filename": WHEEL.filename, "url": "http://10.1.2.3/demo.whl",
                      "hashes": {"sha256": WHEEL.sha256}}]  # fmt: skip
            return httpx.Response(200, json={"meta": {"api-version": "1.1"}, "files": files})
        response = file_response(request, WHEEL.content)
        response.extensions["network_stream"] = Stream("10.1.2.3")
        return response

    settings = dataclasses.replace(
        config(tmp_path),
        upstreams=(dataclasses.replace(config(tmp_path).upstreams[0], mirrors=(lab,)),),
    )
    async with app_client(settings, handle) as client:
        assert (await client.get(f"/files/demo/{WHEEL.filename}")).status_code == 200
