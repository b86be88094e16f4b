"""Prometheus metrics, `GET /metrics`: what the proxy serves, from where, and how its upstreams
are doing. One registry per app (so that several apps in one process keep apart); with
`--workers N`, each process answers with its own counts."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

    def record(self, route: str, status: int, sent: int, cache: str) -> None:
        """One HTTP answer, by route template: a label per project would have no end."""
        self.requests.labels(route, str(status)).inc()
        self.sent_bytes.labels(route).inc(sent)
        if cache:
            self.cache.labels(kind(route), cache).inc()

    def total(self, metric: str, where: Callable[[dict[str, str]], bool] = lambda _: True) -> float:
        """The sum of a metric's samples (`..._total` for a counter) whose labels pass `where`."""
        return sum(
            sample.value
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == metric and where(sample.labels)
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def is_file_route(labels: dict[str, str]) -> bool:
    return kind(labels["route"]) == "file"


def kind(route: str) -> str:
    return "file" if "/files/" in route else "page"
