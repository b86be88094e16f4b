"""Graceful restarts: on SIGTERM a replica stops taking requests (`/-/health` answers 503, so a
load balancer takes it out), lets the requests under way (downloads) finish, up to the drain
timeout, and only then lets the server shut down as it would have at once.

The server (uvicorn) has its own SIGTERM handler, which stops at once; it is kept and called
when the drain is over. Each worker process of `--workers N` drains on its own: the
supervisor hands SIGTERM on to each and waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("pypi_proxy.drain")

HEALTH = "/-/health"  # still answered while draining: 503, for the balancer


class Drain:
    """Whether this process is draining, and how many requests it is still answering."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.draining = False
        self.busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def install(self) -> None:
        """Take SIGTERM over from the server (in the main thread only: a server run in a
        thread, as some tests do, keeps its own handling)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop, previous = asyncio.get_running_loop(), signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.start, previous)

        signal.signal(signal.SIGTERM, on_term)

    def start(self, then: Any = signal.SIG_DFL) -> None:
        """Drain, then hand SIGTERM to `then` (the server's handler)."""
        if self.draining:
            return
        self.draining = True
        log.warning("SIGTERM: draining (%d requests under way; at most %.0f s)", self.busy,
                    self.timeout)  # fmt: skip
        self._task = asyncio.get_running_loop().create_task(self._drain(then))

    async def _drain(self, then: Any) -> None:
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._idle.wait(), self.timeout)
        except asyncio.TimeoutError:
            log.warning("drain timeout: stopping with %d requests under way", self.busy)
        else:
            log.info("drained in %.1f s", time.monotonic() - started)
        signal.signal(signal.SIGTERM, then)
        signal.raise_signal(signal.SIGTERM)

    def began(self) -> None:
        self.busy += 1
        self._idle.clear()

    def ended(self) -> None:
        self.busy -= 1
        if self.busy == 0:
            self._idle.set()


class DrainMiddleware:
    """Counts the requests under way; while draining, refuses new ones with a 503 that a
    balancer (or pip) retries elsewhere, and closes the connection."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app, self.drain = app, drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == HEALTH:
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            await _refuse(send)
            return
        self.drain.began()
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.ended()


async def _refuse(send: Send) -> None:
    body = b"503: this replica is shutting down; retry (another replica will answer)\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"1"),
               (b"connection", b"close"), (b"content-length", str(len(body)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
