"""The proxy as a process of its own, started through its command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from .waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def proxy_process(
    config: dict[str, Any],
    workdir: Path,
    *extra: str,
    cache_dir: Path | None = None,
    log: Path | None = None,
    preexec: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`pypi-proxy serve` on a free port with this config; yields the process and base URL
    once it answers, and stops it on the way out. Its log (stderr) goes to `log`, if given;
    `preexec` runs in the child before the proxy starts (to set its limits); `env` is added
    to its environment."""
    path = workdir / f"proxy-{free_port()}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    command = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(path),
               "--host", "127.0.0.1", "--port", str(port), *extra]  # fmt: skip
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    log_file = open(log, "wb") if log else None  # noqa: SIM115 (closed below)
    stderr = log_file or subprocess.DEVNULL
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        preexec_fn=preexec,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, "the proxy exited"
        try:
            return httpx.get(f"{base}/-/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, seconds=30)
        yield process, base
    finally:
        stop(process)
        if log_file:
            log_file.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it is not gone within 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError("no VmRSS")
