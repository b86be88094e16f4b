"""One look at every HTTP exchange as it ends: counted in the metrics, and written as one line
of the access log (status, body bytes sent, duration, cache result, client address)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import Metrics

access_log = logging.getLogger("pypi_proxy.access")


@dataclass(frozen=True)
class Exchange:
    client: str
    method: str
    path: str
    route: str  # the route's template: `/files/{project}/{filename}`, or "unmatched"
    status: int
    sent: int  # body bytes sent (fewer than promised when the client left or the body was cut)
    duration: float
    cache: str  # X-Cache: HIT, MISS, STALE, PASS, or "" when not a cacheable answer

    def line(self) -> str:
        cache = f" {self.cache}" if self.cache else ""
        return (
            f'{self.client} "{self.method} {self.path}" {self.status} {self.sent} '
            f"{self.duration:.3f}s{cache}"
        )


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, cache, sent, length = 0, "", 0, 0

        async def observed_send(message: Message) -> None:
            nonlocal status, cache, sent, length
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                cache = headers.get(b"x-cache", b"").decode()
                length = int(headers.get(b"content-length", b"0") or 0)
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.pathsend" and scope["method"] != "HEAD":
                await send(message)  # the server's sendfile: all of it, or a cut (raised)
                sent += length
                return
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            client = scope.get("client")
            exchange = Exchange(
                client=client[0] if client else "-",
                method=scope["method"],
                path=scope["path"] + (f"?{query}" if query else ""),
                route=getattr(scope.get("route"), "path", "unmatched"),
                status=status or 500,  # nothing was sent: the app failed
                sent=sent,
                duration=round(time.perf_counter() - started, 4),
                cache=cache,
            )
            self.metrics.record(exchange.route, exchange.status, exchange.sent, exchange.cache)
            access_log.info(exchange.line(), extra={"fields": asdict(exchange)})
