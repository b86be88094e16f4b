"""Files through the proxy, on real servers: streamed once from upstream, verified, kept on
disk, then served with HEAD and Range; broken or corrupt bodies never cached."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import httpx
import pytest
from support.waiting import wait_for
from support.world import BIG, TINYLIB, TORCH, WITH_METADATA, World

TORCH_URL = f"/files/torch/{TORCH.filename.replace('+', '%2B')}"
BIG_URL = f"/files/bigpkg/{BIG.filename}"


def test_first_request_streams_from_upstream_then_disk_serves(
    world: World, client: httpx.Client
) -> None:
    world.mirror.file_faults.drip = 0.01  # so that the first answer surely streams
    first = client.get(BIG_URL)
    assert first.status_code == 200
    assert first.content == BIG.content
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["content-length"] == str(len(BIG.content))
    assert first.headers["accept-ranges"] == "bytes"
    assert first.headers["etag"].startswith('"fill-')  # this download's, not yet the file's

    assert BIG.sha256 in world.cached_files()
    second = client.get(BIG_URL)
    assert second.content == BIG.content
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["content-type"] == "application/octet-stream"
    assert second.headers["accept-ranges"] == "bytes"
    assert second.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert second.headers["etag"] == f'"{BIG.sha256}"'
    assert "content-encoding" not in second.headers
    assert world.mirror.count(BIG.filename, method="GET") == 1
    assert world.cached_files() == {BIG.sha256}


def test_plus_and_percent_2b_are_the_same_file(world: World, client: httpx.Client) -> None:
    encoded = client.get(TORCH_URL)
    raw = client.get(f"/files/torch/{TORCH.filename}")
    assert encoded.content == raw.content == TORCH.content
    assert world.torch.count(lambda r: r.kind == "file") == 1


def test_head_and_ranges_on_a_cached_file(client: httpx.Client) -> None:
    client.get(BIG_URL)  # fill the cache
    size = len(BIG.content)
    head = client.head(BIG_URL)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    assert head.headers["accept-ranges"] == "bytes"

    cases = {
        "bytes=0-99": (0, 100),
        "bytes=1000-": (1000, size),
        "bytes=-10000": (size - 10000, size),  # Poetry's first probe
        f"bytes={size - 5}-{size + 100}": (size - 5, size),
    }
    for header, (start, end) in cases.items():
        response = client.get(BIG_URL, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == BIG.content[start:end], header
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"

    assert client.get(BIG_URL, headers={"Range": f"bytes={size}-"}).status_code == 416
    etag = f'"{BIG.sha256}"'
    resumed = client.get(BIG_URL, headers={"Range": "bytes=100-", "If-Range": etag})
    assert resumed.status_code == 206 and resumed.content == BIG.content[100:]
    changed = client.get(BIG_URL, headers={"Range": "bytes=100-", "If-Range": '"other"'})
    assert changed.status_code == 200 and changed.content == BIG.content


def test_head_of_an_uncached_file_answers_without_a_body(client: httpx.Client) -> None:
    head = client.head(BIG_URL)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(BIG.content))
    assert head.headers["accept-ranges"] == "bytes"


def test_clients_get_bytes_while_the_upstream_is_still_sending(world: World, proxy: str) -> None:
    gate = threading.Event()
    world.mirror.file_faults.gate = gate
    received: list[int] = []
    with httpx.Client(base_url=proxy, timeout=10) as client, client.stream("GET", BIG_URL) as r:
        chunks = r.iter_bytes()
        received.append(len(next(chunks)))
        assert world.mirror.requests[-1].bytes_sent < len(BIG.content)  # still held upstream
        gate.set()
        body = b"".join([BIG.content[: received[0]], *chunks])
    assert received[0] > 0
    assert hashlib.sha256(body).hexdigest() == BIG.sha256


@pytest.mark.parametrize("fault", ["corrupt", "cut"])
def test_a_bad_upstream_body_is_cut_short_and_never_cached(world: World, fault: str) -> None:
    if fault == "corrupt":
        world.mirror.file_faults.corrupt = True
    else:  # every response, resumed ones too, breaks off after 100 KB
        world.mirror.file_faults.cut_after = 100_000
    circuit = {"probe_interval": 0.2, "max_probe_interval": 0.2}
    with world.proxy(circuit=circuit) as base, httpx.Client(base_url=base) as client:
        with pytest.raises(httpx.HTTPError):
            client.get(BIG_URL)  # an incomplete body: the client knows it lacks the file
        assert world.cached_files() == set()
        assert list((world.cache_dir / "tmp").iterdir()) == []
        # The only mirror is now skipped for a while: a quick 503, not another bad download.
        skipped = client.get(BIG_URL)
        assert skipped.status_code == 503 and "no mirror" in skipped.text

        # Once the upstream behaves and its probe is due, the file downloads and verifies.
        world.mirror.reset_faults()
        wait_for(lambda: client.get(BIG_URL).status_code == 200)
        good = client.get(BIG_URL)
        assert hashlib.sha256(good.content).hexdigest() == BIG.sha256
        assert world.cached_files() == {BIG.sha256}


def test_upstream_file_errors(world: World, client: httpx.Client) -> None:
    world.mirror.file_faults.status = 503
    failed = client.get(f"/files/tinylib/{TINYLIB.filename}")
    assert failed.status_code == 503 and "retry-after" in failed.headers
    world.mirror.file_faults.status = None
    world.mirror.file_faults.missing = {TINYLIB.filename}
    assert client.get(f"/files/tinylib/{TINYLIB.filename}").status_code == 404


def test_only_listed_files_are_served_and_no_path_escapes_the_cache(
    world: World, proxy: str, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    bad_paths = [
        "/files/tinylib/not-listed-1.0.tar.gz",
        "/files/tinylib/..",
        "/files/tinylib/..%2F..%2Fsecret.txt",
        "/files/tinylib/%2E%2E%2Fsecret.txt",
        "/files/..%2Fcache/secret.txt",
        "/files/tinylib/../../secret.txt",
        "/files/../secret.txt",
        "/files/tinylib/%00",
        "/files/Tiny..Lib/" + TINYLIB.filename,
        "/files/tinylib/" + TINYLIB.filename + "%2F..",
    ]
    with httpx.Client(base_url=proxy, timeout=10) as client:
        for path in bad_paths:
            # Sent as-is: httpx would otherwise normalize the dots away.
            request = client.build_request("GET", proxy)
            request.url = request.url.copy_with(raw_path=path.encode())
            response = client.send(request)
            assert response.status_code in (400, 404), path
            assert b"secret" not in response.content, path
    assert world.mirror.count(lambda r: r.kind == "file") == 0


def test_metadata_files_are_proxied_verified_and_cached(world: World, client: httpx.Client) -> None:
    page = client.get("/simple/metapkg/", headers={"Accept": "text/html"}).text
    assert f'data-core-metadata="sha256={WITH_METADATA.metadata_sha256}"' in page
    url = f"/files/metapkg/{WITH_METADATA.filename}.metadata"
    first = client.get(url)
    assert first.status_code == 200 and first.content == WITH_METADATA.metadata
    assert client.get(url).content == WITH_METADATA.metadata
    assert world.mirror.count(".metadata") == 1
    # A wheel whose upstream offers no metadata file gets one all the same, read out of it
    # (its end only); pages then offer it with its hash.
    html = client.get("/simple/tinylib/", headers={"Accept": "text/html"}).text
    assert 'data-core-metadata="true"' in html
    assert client.get(f"/files/tinylib/{TINYLIB.filename}.metadata").content == TINYLIB.metadata
    assert world.mirror.count(f"{TINYLIB.filename}.metadata") == 0
    html = client.get("/simple/tinylib/", headers={"Accept": "text/html"}).text
    assert f'data-core-metadata="sha256={TINYLIB.metadata_sha256}"' in html


def test_advertised_metadata_that_the_upstream_lacks_is_read_from_the_wheel(
    world: World, client: httpx.Client
) -> None:
    world.mirror.file_faults.missing = {WITH_METADATA.filename + ".metadata"}
    response = client.get(f"/files/metapkg/{WITH_METADATA.filename}.metadata")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == WITH_METADATA.metadata_sha256
    wheel_gets = [r for r in world.mirror.requests if r.path.endswith(WITH_METADATA.filename)]
    assert [r.headers.get("range") for r in wheel_gets] == ["bytes=-262144"]  # its end only


def test_a_disconnecting_client_does_not_stop_the_download(world: World, proxy: str) -> None:
    world.mirror.file_faults.drip = 0.01
    with httpx.Client(base_url=proxy, timeout=10) as client:
        with client.stream("GET", BIG_URL) as response:
            next(response.iter_bytes())
        wait_for(lambda: bool(world.cached_files()), seconds=20)
        assert world.cached_files() == {BIG.sha256}
        assert client.get(BIG_URL).headers["x-cache"] == "HIT"
    assert world.mirror.count(BIG.filename) == 1
