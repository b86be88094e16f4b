"""Run an ASGI app under a real uvicorn server in a background thread."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

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
