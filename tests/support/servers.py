"""Run an ASGI app under a real server in a background thread: uvicorn, or hypercorn for
HTTP/2 over TLS."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import uvicorn
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from .process import free_port

START_TIMEOUT = 10.0
# Uvicorn waits this long for in-flight requests on shutdown, then cancels them.
GRACEFUL_SHUTDOWN = 2
STOP_TIMEOUT = GRACEFUL_SHUTDOWN + 3.0


@contextmanager
def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: Literal["auto", "on", "off"] = "on",
) -> Iterator[str]:
    """Serve ``app`` on a free port of ``host``; yield the base URL (``http://host:port``).

    The socket is bound here, before the thread starts, so the port is known without racing
    another process for it. On exit the server is asked to stop; requests still in flight
    (a hanging fault, a gated body) are cancelled by uvicorn after ``GRACEFUL_SHUTDOWN``
    seconds, and if the thread is still alive after that, uvicorn is forced to exit.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # TCP, and with proto 0 every response pays ~40 ms of Nagle + delayed-ACK latency.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]

    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        lifespan=lifespan,
    )
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        _wait_started(server, thread, errors)
        url_host = f"[{host}]" if family == socket.AF_INET6 else host
        yield f"http://{url_host}:{port}"
    finally:
        stopped = _stop(server, thread)
        sock.close()
        # Do not mask an exception already on its way out of the with-block.
        if not stopped and sys.exc_info()[1] is None:
            raise RuntimeError(f"uvicorn on port {port} did not stop within the bound")


def _wait_started(
    server: uvicorn.Server, thread: threading.Thread, errors: list[BaseException]
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            # Lifespan startup failures are logged by uvicorn and end the thread quietly.
            cause = errors[0] if errors else None
            raise RuntimeError("uvicorn exited before it started (see log)") from cause
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start within {START_TIMEOUT} s")
        time.sleep(0.01)


def _stop(server: uvicorn.Server, thread: threading.Thread) -> bool:
    server.should_exit = True
    thread.join(STOP_TIMEOUT)
    if thread.is_alive():
        server.force_exit = True
        thread.join(STOP_TIMEOUT)
    return not thread.is_alive()


@contextmanager
def serve_h2(app: Any, workdir: Path) -> Iterator[tuple[str, Path]]:
    """Serve ``app`` with hypercorn over TLS, offering HTTP/2 and HTTP/1.1 (ALPN), with a
    self-signed certificate for 127.0.0.1 made here; yield the base URL and the certificate
    (for clients to trust)."""
    cert, key = workdir / "h2-cert.pem", workdir / "h2-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    port = free_port()
    config = HypercornConfig()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = str(cert), str(key)
    config.alpn_protocols = ["h2", "http/1.1"]
    config.loglevel = "WARNING"
    config.graceful_timeout = GRACEFUL_SHUTDOWN
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        loop.run_until_complete(hypercorn_serve(app, config, shutdown_trigger=stop.wait))

    thread = threading.Thread(target=run, name=f"hypercorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not _accepts(port):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("hypercorn did not start")
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}", cert
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(STOP_TIMEOUT)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False
