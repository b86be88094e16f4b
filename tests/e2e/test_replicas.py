"""Replicas behind a real HAProxy (the README's configuration), sharing a SeaweedFS bucket:
a crowd asking for one file through the balancer costs one upstream download; a replica
that drains (SIGTERM) finishes its download while the others take the new requests; one
killed mid-download (SIGKILL) leaves pip, retrying through the balancer, to install the tree
from the others, and leaves nothing in the bucket that fails verification."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from support.clients import CLIENT_TIMEOUT, installed, isolated_env
from support.haproxy import HAPROXY, haproxy
from support.process import proxy_process
from support.seaweed import SeaweedFS, bucket_files, store_cache
from support.waiting import wait_for
from support.world import BIG, World

pytestmark = pytest.mark.skipif(HAPROXY is None, reason="needs HAProxy (.ci/run installs it)")
BIG_URL = f"/files/bigpkg/{BIG.filename}"


@dataclass
class Cluster:
    base: str  # HAProxy
    replicas: list[tuple[subprocess.Popen[bytes], str]]
    prefix: str

    def downloading(self) -> int:
        """The replica with a download under way."""

        def busy(base: str) -> bool:
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            return "pypi_proxy_fills_in_flight 1.0" in metrics

        wait_for(lambda: any(busy(base) for _, base in self.replicas))
        return next(n for n, (_, base) in enumerate(self.replicas) if busy(base))


@pytest.fixture
def cluster(world: World, s3: SeaweedFS, tmp_path: Path) -> Iterator[Cluster]:
    prefix = f"cluster-{tmp_path.name}"
    with ExitStack() as stack:
        replicas = []
        for n in range(2):
            settings = {**world.settings(), "cache": store_cache(s3, tmp_path / f"r{n}", prefix)}
            replicas.append(
                stack.enter_context(proxy_process(settings, tmp_path, env=s3.credentials))
            )
        base = stack.enter_context(
            haproxy(tmp_path, [b.removeprefix("http://") for _, b in replicas])
        )
        wait_for(lambda: _answers(f"{base}/-/health"), seconds=15)  # its checks passed
        yield Cluster(base, replicas, prefix)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_a_crowd_through_the_balancer_costs_one_upstream_download(
    world: World, cluster: Cluster
) -> None:
    bodies: list[bytes] = []

    def fetch() -> None:
        bodies.append(httpx.get(cluster.base + BIG_URL, timeout=60).content)

    threads = [threading.Thread(target=fetch) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert len(bodies) == 20
    assert all(hashlib.sha256(body).hexdigest() == BIG.sha256 for body in bodies)
    assert world.mirror.count(lambda r: r.kind == "file" and r.method == "GET") == 1


def test_a_draining_replica_finishes_its_download_and_the_others_take_new_requests(
    world: World, cluster: Cluster
) -> None:
    world.mirror.file_faults.rate = 1_000_000  # BIG takes about 3 s
    body: list[bytes] = []
    client = threading.Thread(
        target=lambda: body.append(httpx.get(cluster.base + BIG_URL, timeout=60).content)
    )
    client.start()
    n = cluster.downloading()
    process, _ = cluster.replicas[n]
    process.send_signal(signal.SIGTERM)
    # The same URL (hashed to the draining replica) and others are answered by the rest.
    again = httpx.get(cluster.base + BIG_URL, timeout=60)
    assert again.status_code == 200 and hashlib.sha256(again.content).hexdigest() == BIG.sha256
    assert httpx.get(f"{cluster.base}/simple/tinylib/", timeout=30).status_code == 200
    client.join(timeout=60)
    assert hashlib.sha256(body[0]).hexdigest() == BIG.sha256  # the download under way finished
    assert process.wait(timeout=30) is not None  # and then it exited


def test_pip_installs_through_the_balancer_when_a_replica_dies_mid_download(
    world: World, s3: SeaweedFS, cluster: Cluster, tmp_path: Path
) -> None:
    world.mirror.file_faults.rate = 1_000_000
    target = tmp_path / "target"
    command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--index-url",
               f"{cluster.base}/simple/", "--target", str(target), "bigpkg", "tinyapp"]  # fmt: skip
    pip = subprocess.Popen(
        command, env=isolated_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    n = cluster.downloading()
    cluster.replicas[n][0].kill()
    out, _ = pip.communicate(timeout=CLIENT_TIMEOUT)
    assert pip.returncode == 0, out.decode()
    assert installed(target) == {"bigpkg": "1.0", "tinyapp": "1.0", "tinylib": "1.1"}
    # What reached the bucket is whole: cache verify finds nothing to remove.
    survivor = cluster.replicas[1 - n][1]
    wait_for(
        lambda: httpx.get(f"{survivor}/-/health", timeout=5).json()["store"]["uploads_pending"] == 0
    )
    assert BIG.sha256 in bucket_files(s3.endpoint, cluster.prefix)
    config = tmp_path / "verify.yaml"
    config.write_text(
        yaml.safe_dump(
            {**world.settings(), "cache": store_cache(s3, tmp_path / f"r{1 - n}", cluster.prefix)}
        )
    )
    verify = [sys.executable, "-m", "proxy.cli", "cache", "--config", str(config), "verify"]
    done = subprocess.run(verify, capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **s3.credentials})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert ", 0 corrupt and removed" in done.stdout


def _pending(base: str) -> int:
    pending: int = httpx.get(f"{base}/-/health", timeout=5).json()["store"]["uploads_pending"]
    return pending
