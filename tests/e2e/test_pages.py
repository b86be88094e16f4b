"""Index pages through the proxy, on real servers: routing, negotiation, caching, redirects."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from support.repo import OFFICIAL_INDEX
from support.waiting import wait_for
from support.wheels import make_wheel
from support.world import TINYAPP, TINYDEP, TINYDEP_ON_TORCH, TORCH, World

JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {V1_HTML}; q=0.1, text/html; q=0.01"


def test_project_page_as_json_for_pip_and_html_for_browsers(client: httpx.Client) -> None:
    as_json = client.get("/simple/tinyapp/", headers={"Accept": PIP_ACCEPT})
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == JSON
    assert as_json.headers["vary"] == "Accept"
    assert as_json.headers["cache-control"] == "max-age=600, public"
    doc = as_json.json()
    assert doc["meta"]["api-version"] == "1.4"
    (entry,) = doc["files"]
    assert entry["filename"] == TINYAPP.filename
    assert entry["hashes"] == {"sha256": TINYAPP.sha256}
    assert entry["size"] == len(TINYAPP.content)
    assert entry["url"] == f"../../files/tinyapp/{TINYAPP.filename}"

    as_html = client.get("/simple/tinyapp/", headers={"Accept": "*/*"})
    assert as_html.headers["content-type"] == "text/html; charset=utf-8"
    assert f'href="../../files/tinyapp/{TINYAPP.filename}#sha256={TINYAPP.sha256}"' in as_html.text

    v1_html = client.get("/simple/tinyapp/", headers={"Accept": V1_HTML})
    assert v1_html.headers["content-type"] == V1_HTML
    assert client.get("/simple/tinyapp/", headers={"Accept": "application/json"}).status_code == 406


def test_no_upstream_host_reaches_a_client(world: World, client: httpx.Client) -> None:
    for project in ["tinyapp", "torch", "tinylib"]:
        for accept in [PIP_ACCEPT, "text/html"]:
            body = client.get(f"/simple/{project}/", headers={"Accept": accept}).text
            assert "127.0.0.1" not in body and "http" not in body.replace("http-equiv", "")
    assert world.mirror_url.split("//")[1] not in client.get("/simple/").text


def test_routing_torch_comes_from_the_pytorch_upstream_only(
    world: World, client: httpx.Client
) -> None:
    doc = client.get("/simple/torch/", headers={"Accept": JSON}).json()
    assert [f["filename"] for f in doc["files"]] == [TORCH.filename]
    assert doc["versions"] == ["2.3.1+cu121"]
    assert world.mirror.count("/torch/") == 0  # the decoy on the mirror is never even asked for

    # Everything else: the mirror first; the PyTorch upstream only for what the mirror lacks.
    tinydep = client.get("/simple/tinydep/", headers={"Accept": JSON}).json()
    assert [f["filename"] for f in tinydep["files"]] == [TINYDEP.filename]
    only = client.get("/simple/onlytorch/", headers={"Accept": JSON})
    assert only.status_code == 200 and only.json()["files"][0]["filename"].startswith("onlytorch")


def test_unknown_projects_are_404_also_when_the_upstream_says_403(
    world: World, client: httpx.Client
) -> None:
    response = client.get("/simple/no-such-project/")
    assert response.status_code == 404
    assert world.torch.count("/no-such-project/") == 1  # answered 403 there
    assert client.get("/simple/torchvision/").status_code == 404  # routed to PyTorch only


def test_redirects_to_the_normalized_name_with_a_slash(client: httpx.Client) -> None:
    for path in ["/simple/TinyApp/", "/simple/tinyapp", "/simple/Tiny_App", "/simple/tiny.app/"]:
        response = client.get(path)
        assert response.status_code == 301, path
    assert client.get("/simple/TinyApp/").headers["location"] == "/simple/tinyapp/"
    assert client.get("/simple/Tiny_App").headers["location"] == "/simple/tiny-app/"
    assert client.get("/simple").headers["location"] == "/simple/"
    assert client.get("/simple/bad%20name/").status_code == 404


def test_etag_and_304(client: httpx.Client) -> None:
    first = client.get("/simple/tinylib/", headers={"Accept": JSON})
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = client.get("/simple/tinylib/", headers={"Accept": JSON, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other_format = client.get("/simple/tinylib/", headers={"Accept": "text/html"})
    assert other_format.headers["etag"] != etag
    stale = client.get("/simple/tinylib/", headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200


def test_pages_are_fetched_once_per_ttl_and_survive_a_restart(world: World) -> None:
    with world.proxy(cache={"dir": str(world.cache_dir), "page_ttl": 1}) as base:
        first = httpx.get(f"{base}/simple/tinyapp/", headers={"Accept": JSON})
        assert first.headers["x-cache"] == "MISS"
        assert httpx.get(f"{base}/simple/tinyapp/").headers["x-cache"] == "HIT"
        assert world.mirror.count("/simple/tinyapp/") == 1
        # Once expired: served at once, while one refresh runs in the background.
        wait_for(lambda: httpx.get(f"{base}/simple/tinyapp/").headers["x-cache"] == "STALE")
        wait_for(lambda: world.mirror.count("/simple/tinyapp/") == 2)
        wait_for(lambda: httpx.get(f"{base}/simple/tinyapp/").headers["x-cache"] == "HIT")
        assert world.mirror.count("/simple/tinyapp/") == 2

    # A new process on the same cache directory: the page comes from disk, no upstream call.
    with world.proxy() as base:
        again = httpx.get(f"{base}/simple/tinyapp/", headers={"Accept": JSON})
        assert again.headers["x-cache"] == "HIT"
        assert again.json() == first.json()
    assert world.mirror.count("/simple/tinyapp/") == 2


def test_upstream_trouble_is_503_with_retry_after_or_a_stale_copy(world: World) -> None:
    with world.proxy(cache={"dir": str(world.cache_dir), "page_ttl": 0}) as base:
        assert httpx.get(f"{base}/simple/tinylib/").status_code == 200
        world.mirror.page_faults.status = 503
        stale = httpx.get(f"{base}/simple/tinylib/")
        assert stale.status_code == 200 and stale.headers["x-cache"] == "STALE"
        missing = httpx.get(f"{base}/simple/tinyapp/")
        assert missing.status_code == 503
        assert missing.headers["retry-after"].isdigit()
        # A higher-priority upstream failing never lets a lower one answer in its place.
        assert world.torch.count("/tinyapp/") == 0


def test_json_served_as_octet_stream_is_understood(world: World, client: httpx.Client) -> None:
    world.mirror.json_content_type = "application/octet-stream"
    doc = client.get("/simple/tinylib/", headers={"Accept": JSON}).json()
    assert {f["filename"] for f in doc["files"]} == {
        "tinylib-1.0-py3-none-any.whl",
        "tinylib-1.1-py3-none-any.whl",
    }
    assert all("size" in f for f in doc["files"])  # so it really was the JSON that was parsed


def test_root_lists_the_union_of_upstream_projects(client: httpx.Client) -> None:
    doc = client.get("/simple/", headers={"Accept": JSON}).json()
    names = {p["name"] for p in doc["projects"]}
    assert {"tinyapp", "tinylib", "torch", "onlytorch", "metapkg"} <= names
    html = client.get("/simple/").text
    assert '<a href="onlytorch/">onlytorch</a>' in html


def test_a_recorded_page_of_the_official_index_passes_through(
    world: World, client: httpx.Client
) -> None:

    fixtures = OFFICIAL_INDEX
    recorded = json.loads((fixtures / "numpy.json").read_bytes())
    world.mirror.add_raw_page("numpy", (fixtures / "numpy.json").read_bytes(), JSON)
    doc = client.get("/simple/numpy/", headers={"Accept": JSON}).json()
    assert len(doc["files"]) == len(recorded["files"]) == 4415
    served = {f["filename"]: f for f in doc["files"]}
    for original in recorded["files"]:
        mine = served[original["filename"]]
        assert mine["hashes"] == original["hashes"]
        assert mine["yanked"] == original["yanked"]
        assert mine["requires-python"] == original["requires-python"]
        assert mine["size"] == original["size"]
        assert mine["upload-time"] == original["upload-time"]
        assert mine["url"] == f"../../files/numpy/{original['filename']}"


def test_concurrent_requests_for_a_page_share_one_upstream_fetch(world: World, proxy: str) -> None:
    world.mirror.page_faults.hang = True  # hold the upstream until every client is waiting
    with ThreadPoolExecutor(8) as pool:
        futures = [
            pool.submit(httpx.get, f"{proxy}/simple/tinyapp/", headers={"Accept": JSON}, timeout=10)
            for _ in range(8)
        ]
        deadline = time.monotonic() + 5
        while world.mirror.count("/simple/tinyapp/") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # let the other seven arrive at the proxy
        world.mirror.page_faults.hang = False
        responses = [f.result() for f in futures]
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert world.mirror.count("/simple/tinyapp/") == 1


def test_the_union_strategy_merges_files_from_several_upstreams(world: World) -> None:
    routes = [{"projects": ["tinydep"], "upstreams": ["pypi", "pytorch"], "strategy": "union"}]
    with world.proxy(routes=routes) as base:
        doc = httpx.get(f"{base}/simple/tinydep/", headers={"Accept": JSON}).json()
        assert [f["filename"] for f in doc["files"]] == [
            TINYDEP.filename,  # the mirror's, first
            TINYDEP_ON_TORCH.filename,
        ]
        assert doc["versions"] == ["0.4", "0.5"]
        # Each file comes from the upstream that listed it.
        for wheel, upstream in ((TINYDEP, world.mirror), (TINYDEP_ON_TORCH, world.torch)):
            body = httpx.get(f"{base}/files/tinydep/{wheel.filename}", timeout=30).content
            assert body == wheel.content
            assert upstream.count(wheel.filename) == 1


def test_a_file_listed_without_a_hash_is_listed_with_it_once_downloaded(
    world: World, client: httpx.Client
) -> None:
    nightly = make_wheel("nightlypkg", "2.5.0.dev20240101")  # as on nightly pages: no hash
    path = f"{world.torch.prefix}/{nightly.filename}"
    world.torch.add_blob(path, nightly.content)
    world.torch.add_raw_page(
        "nightlypkg", f'<a href="{path}">{nightly.filename}</a>'.encode(), "text/html"
    )
    assert "#sha256=" not in client.get("/simple/nightlypkg/").text
    assert client.get(f"/files/nightlypkg/{nightly.filename}").content == nightly.content
    for accept in ("text/html", JSON):
        page = client.get("/simple/nightlypkg/", headers={"Accept": accept}).text
        assert nightly.sha256 in page
    assert nightly.sha256 in world.cached_files()
    assert client.get(f"/files/nightlypkg/{nightly.filename}").headers["x-cache"] == "HIT"
