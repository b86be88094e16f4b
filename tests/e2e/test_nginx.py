"""Behind nginx with `offload.x_accel_redirect`: nginx sends cache hits itself (sendfile),
and everything else still streams through the proxy."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.process import free_port
from support.waiting import wait_for
from support.world import BIG, World

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="needs nginx (.ci/run installs it)")

PREFIX = "/_pypi_proxy_files/"


def nginx_config(port: int, proxy: str, files: Path, work: Path) -> str:
    """The README's configuration, with test paths and ports."""
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {work}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
{user}
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ }}
http {{
{temp}
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {proxy};
            proxy_buffering off;        # first downloads stream as they arrive
            proxy_read_timeout 300s;
            proxy_set_header Host $http_host;
        }}
        location {PREFIX} {{
            internal;                   # only for the proxy's X-Accel-Redirect answers
            alias {files}/;
            sendfile on;
            tcp_nopush on;
            default_type application/octet-stream;
        }}
    }}
}}
"""


@pytest.fixture
def nginx(world: World, tmp_path: Path) -> Iterator[str]:
    with world.proxy(offload={"x_accel_redirect": PREFIX}) as proxy:
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_config(port, proxy, world.cache_dir / "files", tmp_path))
        assert NGINX is not None
        process = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                return httpx.get(f"{base}/-/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_for(ready)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_nginx_serves_cache_hits_and_ranges_from_disk(world: World, nginx: str) -> None:
    url = f"{nginx}/files/bigpkg/{BIG.filename}"
    first = httpx.get(url, timeout=30)  # streams through the proxy, fills the cache
    assert first.headers["x-cache"] == "MISS"
    assert hashlib.sha256(first.content).hexdigest() == BIG.sha256

    hit = httpx.get(url, timeout=30)  # answered by nginx from the file
    assert hashlib.sha256(hit.content).hexdigest() == BIG.sha256
    assert hit.headers["content-length"] == str(len(BIG.content))
    assert "x-accel-redirect" not in hit.headers
    tail = httpx.get(url, headers={"Range": "bytes=-10000"}, timeout=30)
    assert tail.status_code == 206 and tail.content == BIG.content[-10000:]
    # The internal location cannot be asked for directly.
    sha = BIG.sha256
    assert httpx.get(f"{nginx}{PREFIX}{sha[:2]}/{sha[2:4]}/{sha}").status_code == 404
    assert world.mirror.count(BIG.filename) == 1
