"""Graceful restarts, with the proxy as a process of its own: on SIGTERM it answers `/-/health`
with 503 (a balancer takes it out) and new requests with a 503 to retry elsewhere, lets the
download under way finish, then exits by itself; past the drain timeout it stops anyway."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from support.process import proxy_process
from support.waiting import wait_for
from support.world import BIG, World

BIG_URL = f"/files/bigpkg/{BIG.filename}"


class Download:
    """A client downloading BIG through the proxy in a thread of its own."""

    def __init__(self, base: str) -> None:
        self.received = 0
        self.body = b""
        self.error: Exception | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(base,), daemon=True)
        self._thread.start()

    def _run(self, base: str) -> None:
        chunks = []
        try:
            with httpx.stream("GET", base + BIG_URL, timeout=30) as response:
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    self.received += len(chunk)
            self.body = b"".join(chunks)
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.done.set()


def _exit_code(process: subprocess.Popen[bytes], seconds: float) -> int:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the proxy did not exit within {seconds} s of SIGTERM")


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_the_download_under_way_finish_and_sends_new_requests_away(
    world: World, tmp_path: Path, workers: int
) -> None:
    world.mirror.file_faults.rate = 1_000_000  # BIG (3 MiB) takes about 3 s
    settings = world.settings()
    with proxy_process(settings, tmp_path, "--workers", str(workers)) as (process, base):
        download = Download(base)
        wait_for(lambda: download.received > 0)
        process.send_signal(signal.SIGTERM)
        # The replica stays up and says it is going: 503 to the balancer and to new requests.
        wait_for(lambda: httpx.get(f"{base}/-/health", timeout=5).status_code == 503)
        health = httpx.get(f"{base}/-/health", timeout=5).json()
        assert health["status"] == "draining" and health["problems"][0].startswith("draining")
        refused = httpx.get(f"{base}/simple/tinylib/", timeout=5)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert process.poll() is None and not download.done.is_set()
        assert download.done.wait(30) and download.error is None
        assert hashlib.sha256(download.body).hexdigest() == BIG.sha256
        _exit_code(process, 15)  # then it exits by itself
    assert world.cached_files() == {BIG.sha256}


def test_past_the_drain_timeout_it_stops_anyway(world: World, tmp_path: Path) -> None:
    world.mirror.file_faults.rate = 100_000  # BIG would take 30 s
    settings = {**world.settings(), "listen": {"drain_timeout": "1s"}}
    with proxy_process(settings, tmp_path) as (process, base):
        download = Download(base)
        wait_for(lambda: download.received > 0)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _exit_code(process, 15)
        # The drain timeout, then the server's own few seconds for connections to close.
        assert 1 <= time.monotonic() - signalled < 10
        assert download.done.wait(10) and download.error is not None  # cut, never complete
