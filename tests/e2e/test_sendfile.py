"""Cached files sent with the kernel's sendfile by the proxy itself (the `serve` command's
protocol), with HEAD, Range and If-Range as before and the send deadline kept."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
from support.process import proxy_process
from support.wheels import make_wheel
from support.world import World

HUGE = make_wheel("hugepkg", "1.0", payload_size=24 * 1024 * 1024)


def test_a_cached_file_goes_by_sendfile_with_range_and_if_range_as_before(
    world: World, tmp_path: Path
) -> None:
    world.mirror.add(HUGE)
    data = world.settings(timeouts={"client_send": "1s"})
    log = tmp_path / "proxy.log"
    with proxy_process(data, tmp_path, "--log-level", "debug", log=log) as (_, base):
        url = f"{base}/files/hugepkg/{HUGE.filename}"
        with httpx.Client(timeout=30) as client:
            assert client.get(url).headers["x-cache"] == "MISS"
            assert HUGE.sha256 in world.cached_files()
            hit = client.get(url)
            assert hit.headers["x-cache"] == "HIT" and hit.content == HUGE.content
            etag = hit.headers["etag"]
            head = client.head(url)
            assert head.headers["content-length"] == str(HUGE.size) and head.content == b""
            part = client.get(url, headers={"Range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == HUGE.content[10:20]
            same = client.get(url, headers={"Range": "bytes=10-19", "If-Range": etag})
            assert same.status_code == 206
            changed = client.get(url, headers={"Range": "bytes=10-19", "If-Range": '"other"'})
            assert changed.status_code == 200 and changed.content == HUGE.content
        host, port = base.removeprefix("http://").split(":")
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((host, int(port)))
        with stalled:  # takes nothing: cut off after the send deadline
            stalled.sendall(
                f"GET /files/hugepkg/{HUGE.filename} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            time.sleep(3)
            received, stalled_for = 0, time.monotonic()
            stalled.settimeout(5)
            try:
                while chunk := stalled.recv(1 << 20):
                    received += len(chunk)
            except ConnectionResetError:
                pass
        assert received < HUGE.size and time.monotonic() - stalled_for < 5
    text = log.read_text()
    assert text.count("with sendfile") == 2  # the two whole hits; ranges took the other path
    hits = [line for line in text.splitlines() if "pypi_proxy.access" in line and " HIT" in line]
    assert any(f" 200 {HUGE.size} " in line for line in hits)


def test_a_client_reading_slowly_but_steadily_is_not_cut(world: World, tmp_path: Path) -> None:
    """The send deadline is for a client that takes nothing, not for one that reads at a few
    MB/s: each piece handed to sendfile is small enough to leave within it."""
    world.mirror.add(HUGE)
    data = world.settings(timeouts={"client_send": "1s"})
    with proxy_process(data, tmp_path) as (_, base):
        url = f"{base}/files/hugepkg/{HUGE.filename}"
        assert len(httpx.get(url, timeout=30).content) == HUGE.size
        assert HUGE.sha256 in world.cached_files()
        host, port = base.removeprefix("http://").split(":")
        reader = socket.socket()
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        reader.connect((host, int(port)))
        with reader:
            reader.sendall(
                f"GET /files/hugepkg/{HUGE.filename} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            reader.settimeout(10)
            received = b""
            while len(received) < HUGE.size + 200:
                chunk = reader.recv(64 * 1024)  # about 3 MB/s
                if not chunk:
                    break
                received += chunk
                time.sleep(0.02)
    assert received.endswith(HUGE.content)
