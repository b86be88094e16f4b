"""Prometheus metrics, `GET /metrics`: what the proxy serves, from where, and how its upstreams
are doing. One registry per app (so that several apps in one process keep apart); with
`--workers N`, each process answers with its own counts."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "pypi_proxy_requests", "Requests answered", ["route", "status"], registry=r
        )
        self.sent_bytes = Counter(
            "pypi_proxy_sent_bytes", "Body bytes sent to clients", ["route"], registry=r
        )
        self.cache = Counter(
            "pypi_proxy_cache_results",
            "Answers by X-Cache (HIT, MISS, STALE, PASS) and kind (page, file)",
            ["kind", "result"],
            registry=r,
        )
        self.fetched_bytes = Counter(
            "pypi_proxy_upstream_bytes", "File bytes fetched from upstreams", registry=r
        )
        self.upstream_errors = Counter(
            "pypi_proxy_upstream_errors", "Failed upstream requests", ["mirror"], registry=r
        )
        self.upstream_latency = Histogram(
            "pypi_proxy_upstream_latency_seconds",
            "Time to response headers of upstream requests that succeeded",
            ["mirror"],
            registry=r,
        )
        self.fills = Gauge("pypi_proxy_fills_in_flight", "Downloads under way", registry=r)
        self.cache_bytes = Gauge(
            "pypi_proxy_cache_bytes",
            "Bytes of files in the cache (this process's count)",
            registry=r,
        )

    def watch(self, fills: Callable[[], int], cache_bytes: Callable[[], int]) -> None:
        """Gauges read when scraped."""
        self.fills.set_function(fills)
        self.cache_bytes.set_function(cache_bytes)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP answer by route template, status and X-Cache, and its body bytes."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, cache, sent = 0, "", 0

        async def counting_send(message: Message) -> None:
            nonlocal status, cache, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                cache = dict(message.get("headers", [])).get(b"x-cache", b"").decode()
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            # The route's template, not the path: a label per project would have no end.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, str(status or 500)).inc()
            self.metrics.sent_bytes.labels(route).inc(sent)
            if cache:
                kind = "file" if "/files/" in route else "page"
                self.metrics.cache.labels(kind, cache).inc()
