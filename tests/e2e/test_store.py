"""The object-store tier against a real S3-compatible server (SeaweedFS on 127.0.0.1), with
the proxy as processes of its own: what one replica caches goes to the bucket behind the
client's back and another replica serves it from there, verified, with no upstream file
request; with the bucket hanging, replicas serve from their own cache and from upstream,
say so in /-/health, and upload what they owe once it answers again."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.process import proxy_process
from support.seaweed import BUCKET, SeaweedFS, bucket_files, put_file, store_cache
from support.waiting import wait_for
from support.world import BIG, ONLY_ON_TORCH, TINYAPP, TINYLIB, World

BIG_URL = f"/files/bigpkg/{BIG.filename}"
TINYLIB_URL = f"/files/tinylib/{TINYLIB.filename}"


def _settings(world: World, s3: SeaweedFS, cache: Path, prefix: str, **more: Any) -> dict[str, Any]:
    return {**world.settings(), "cache": store_cache(s3, cache, prefix), **more}


def _health(base: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{base}/-/health", timeout=10).json()
    return document


def test_what_one_replica_cached_another_serves_from_the_bucket(
    world: World, s3: SeaweedFS, tmp_path: Path
) -> None:
    prefix = f"replicas-{tmp_path.name}"
    one = _settings(world, s3, tmp_path / "one", prefix)
    with proxy_process(one, tmp_path, env=s3.credentials) as (_, base):
        first = httpx.get(base + BIG_URL, timeout=30)
        assert hashlib.sha256(first.content).hexdigest() == BIG.sha256
        wait_for(lambda: BIG.sha256 in bucket_files(s3.endpoint, prefix), seconds=30)
        assert _health(base)["store"]["uploads_pending"] == 0
    assert bucket_files(s3.endpoint, prefix)[BIG.sha256] == BIG.content
    world.mirror.reset_log()
    # As several ranges at once (BIG is above 1 MiB): all of them from the bucket.
    downloads = {"segments": 4, "segment_above": "1MiB"}
    two = _settings(world, s3, tmp_path / "two", prefix, downloads=downloads)
    with proxy_process(two, tmp_path, env=s3.credentials) as (_, base):
        second = httpx.get(base + BIG_URL, timeout=30)
        assert hashlib.sha256(second.content).hexdigest() == BIG.sha256
        # Its own page cache fetched the page; the file came from the bucket alone.
        assert world.mirror.count(lambda r: r.kind == "file") == 0
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert "pypi_proxy_store_hits_total 1.0" in metrics
        ranged = httpx.get(base + BIG_URL, headers={"Range": "bytes=10-19"}, timeout=10)
        assert ranged.status_code == 206 and ranged.content == BIG.content[10:20]


def test_with_the_bucket_hanging_replicas_serve_and_catch_up_once_it_answers(
    world: World, s3: SeaweedFS, tmp_path: Path
) -> None:
    prefix = f"hanging-{tmp_path.name}"
    quick = {"timeouts": {"connect": 1, "first_byte": 1, "stall": 1}, "circuit": {"failures": 1}}
    settings = _settings(world, s3, tmp_path / "cache", prefix, **quick)
    with proxy_process(settings, tmp_path, env=s3.credentials) as (_, base):
        s3.pause()
        try:
            served = httpx.get(base + TINYLIB_URL, timeout=30)  # the bucket asked first, hanging
            assert served.status_code == 200 and served.content == TINYLIB.content
            wait_for(lambda: _health(base)["status"] == "degraded", seconds=30)
            health = _health(base)
            assert any(p.startswith(f"object store s3://{BUCKET}/{prefix}: unreachable")
                       for p in health["problems"])  # fmt: skip
            assert health["store"]["uploads_pending"] == 1
            assert "proxy-test" not in str(health)  # never the credentials
            status = httpx.get(f"{base}/", timeout=10).text
            assert f"s3://{BUCKET}/{prefix}</code>, unreachable" in status
            assert "proxy-test" not in status
            again = httpx.get(base + TINYLIB_URL, timeout=10)  # the hot tier still serves
            assert again.status_code == 200 and again.headers["x-cache"] == "HIT"
        finally:
            s3.resume()
        wait_for(lambda: TINYLIB.sha256 in bucket_files(s3.endpoint, prefix), seconds=45)
        wait_for(lambda: _health(base)["status"] == "ok", seconds=30)
        assert _health(base)["store"]["uploads_pending"] == 0


def test_a_corrupt_object_is_deleted_and_the_file_fetched_from_upstream_again(
    world: World, s3: SeaweedFS, tmp_path: Path
) -> None:
    prefix = f"corrupt-{tmp_path.name}"
    put_file(s3.endpoint, prefix, TINYLIB.sha256, TINYLIB.content[:-1] + b"!")
    settings = _settings(world, s3, tmp_path / "cache", prefix)
    with proxy_process(settings, tmp_path, env=s3.credentials) as (_, base):
        with pytest.raises(httpx.HTTPError):  # the last byte held back, then the cut
            httpx.get(base + TINYLIB_URL, timeout=30)
        good = httpx.get(base + TINYLIB_URL, timeout=30)  # as pip would retry
        assert good.status_code == 200 and good.content == TINYLIB.content
        # Uploaded anew, with the right bytes this time.
        wait_for(lambda: bucket_files(s3.endpoint, prefix).get(TINYLIB.sha256) == TINYLIB.content)


def test_cache_verify_checks_the_bucket_too(world: World, s3: SeaweedFS, tmp_path: Path) -> None:
    prefix = f"verify-{tmp_path.name}"
    put_file(s3.endpoint, prefix, TINYLIB.sha256, TINYLIB.content)
    put_file(s3.endpoint, prefix, TINYAPP.sha256, b"not tinyapp")
    (tmp_path / "cache" / "files").mkdir(parents=True)
    config = tmp_path / "proxy.yaml"
    config.write_text(yaml.safe_dump(_settings(world, s3, tmp_path / "cache", prefix)))
    command = [sys.executable, "-m", "proxy.cli", "cache", "--config", str(config), "verify"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **s3.credentials})  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"removed {TINYAPP.sha256} from s3://{BUCKET}/{prefix}" in done.stdout
    assert f"2 files verified in s3://{BUCKET}/{prefix}, 1 corrupt and removed" in done.stdout
    assert set(bucket_files(s3.endpoint, prefix)) == {TINYLIB.sha256}
    stats = [sys.executable, "-m", "proxy.cli", "cache", "--config", str(config), "stats"]
    done = subprocess.run(stats, capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **s3.credentials})  # fmt: skip
    assert f"store:     s3://{BUCKET}/{prefix}: 1 files, {TINYLIB.size} B" in done.stdout


def test_a_hash_one_replica_learned_is_listed_by_the_others(
    world: World, s3: SeaweedFS, tmp_path: Path
) -> None:
    # The PyTorch-like upstream lists this wheel without a hash, as its nightly pages do.
    path = f"{world.torch.prefix}/{ONLY_ON_TORCH.filename}"
    page = f'<html><body><a href="{path}">{ONLY_ON_TORCH.filename}</a></body></html>'
    world.torch.add_raw_page("onlytorch", page.encode(), "text/html")
    prefix = f"lessons-{tmp_path.name}"
    url = f"/files/onlytorch/{ONLY_ON_TORCH.filename}"
    one = _settings(world, s3, tmp_path / "one", prefix)
    with proxy_process(one, tmp_path, env=s3.credentials) as (_, base):
        assert _hashes(base, "onlytorch") == {}
        assert httpx.get(base + url, timeout=30).content == ONLY_ON_TORCH.content
        assert _hashes(base, "onlytorch") == {"sha256": ONLY_ON_TORCH.sha256}  # learned
        wait_for(lambda: ONLY_ON_TORCH.sha256 in bucket_files(s3.endpoint, prefix))
    world.torch.reset_log()
    two = _settings(world, s3, tmp_path / "two", prefix)
    with proxy_process(two, tmp_path, env=s3.credentials) as (_, base):
        wait_for(lambda: _hashes(base, "onlytorch") == {"sha256": ONLY_ON_TORCH.sha256})
        assert httpx.get(base + url, timeout=30).content == ONLY_ON_TORCH.content
        assert world.torch.count(lambda r: r.kind == "file") == 0  # from the bucket, by hash


def _hashes(base: str, project: str) -> dict[str, str]:
    accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    page = httpx.get(f"{base}/simple/{project}/", headers=accept, timeout=30).json()
    [file] = page["files"]
    hashes: dict[str, str] = file["hashes"]
    return hashes
