"""Prometheus metrics, `GET /metrics`: what the proxy serves, from where, and how its upstreams
are doing. One registry per app (so that several apps in one process keep apart); with
`--workers N`, each process answers with its own counts. The only module that names a metric.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..core.redact import hide_passwords
from ..core.status_page import Traffic

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self._requests = Counter(
            "pypi_proxy_requests", "Requests answered", ["route", "status"], registry=r
        )
        self._sent_bytes = Counter(
            "pypi_proxy_sent_bytes", "Body bytes sent to clients", ["route"], registry=r
        )
        self._cache = Counter(
            "pypi_proxy_cache_results",
            "Answers by X-Cache (HIT, MISS, STALE, PASS) and kind (page, file, conda)",
            ["kind", "result"],
            registry=r,
        )
        self._fetched_bytes = Counter(
            "pypi_proxy_upstream_bytes", "File bytes fetched from upstreams", registry=r
        )
        self._upstream_errors = Counter(
            "pypi_proxy_upstream_errors", "Failed upstream requests", ["mirror"], registry=r
        )
        self._upstream_latency = Histogram(
            "pypi_proxy_upstream_latency_seconds",
            "Time to response headers of upstream requests that succeeded",
            ["mirror"],
            registry=r,
        )
        self._policy_hidden = Counter(
            "pypi_proxy_policy_hidden",
            "Files left off pages and files or projects refused, by the policy key that did it",
            ["policy"],
            registry=r,
        )
        self._hedges = Counter(
            "pypi_proxy_upstream_hedges",
            "Requests sent to the next mirror as well, the first having been slow to answer",
            ["mirror"],
            registry=r,
        )
        self._prefetches = Counter(
            "pypi_proxy_prefetches",
            "What warming the dependencies of served metadata fetched (page, metadata, file)",
            ["kind"],
            registry=r,
        )
        self._prefetches_used = Counter(
            "pypi_proxy_prefetches_used",
            "Of those, what a client then asked for",
            ["kind"],
            registry=r,
        )
        self._throughput = Gauge(
            "pypi_proxy_upstream_throughput_bytes_per_second",
            "Bytes a second of one file body from the mirror, smoothed over long bodies",
            ["mirror"],
            registry=r,
        )
        self._fills = Gauge("pypi_proxy_fills_in_flight", "Downloads under way", registry=r)
        self._cache_bytes = Gauge(
            "pypi_proxy_cache_bytes",
            "Bytes of files in the cache (this process's count)",
            registry=r,
        )
        self._conda = Counter(
            "pypi_proxy_conda_requests",
            "Requests for conda channels' files, by kind (index, shard, package)",
            ["kind"],
            registry=r,
        )
        self._store_hits = Counter(
            "pypi_proxy_store_hits",
            "Files brought into the local cache from the object store",
            registry=r,
        )
        self._store_upload_failures = Counter(
            "pypi_proxy_store_upload_failures",
            "Uploads to the object store that failed",
            registry=r,
        )
        self._store_pending = Gauge(
            "pypi_proxy_store_uploads_pending",
            "Files in the local cache not yet in the object store",
            registry=r,
        )

    def watch_uploads(self, pending: Callable[[], int]) -> None:
        self._store_pending.set_function(pending)

    def store_counts(self) -> tuple[int, int]:
        """Files brought from the object store, and uploads to it that failed, so far."""
        return _total(self._store_hits), _total(self._store_upload_failures)

    def conda_request(self, kind: str) -> None:
        self._conda.labels(kind).inc()

    def conda_counts(self) -> dict[str, int]:
        """Requests for conda channels' files so far, by kind."""
        counts = dict.fromkeys(("index", "shard", "package"), 0)
        for family in self._conda.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["kind"]] = int(sample.value)
        return counts

    def store_hit(self) -> None:
        self._store_hits.inc()

    def store_upload_failed(self) -> None:
        self._store_upload_failures.inc()

    def watch(self, fills: Callable[[], int], cache_bytes: Callable[[], int]) -> None:
        """Gauges read when scraped."""
        self._fills.set_function(fills)
        self._cache_bytes.set_function(cache_bytes)

    def record(self, route: str, status: int, sent: int, cache: str) -> None:
        """One HTTP answer, by route template (a label per project would have no end), and
        its `X-Cache` if it has one."""
        self._requests.labels(route, str(status)).inc()
        self._sent_bytes.labels(route).inc(sent)
        if cache:
            self._cache.labels(_kind(route), cache).inc()

    def upstream_bytes(self, count: int) -> None:
        self._fetched_bytes.inc(count)

    def upstream_error(self, mirror: str) -> None:
        self._upstream_errors.labels(hide_passwords(mirror)).inc()

    def hedged(self, mirror: str) -> None:
        """`mirror` was slow to answer: the next one is asked as well."""
        self._hedges.labels(hide_passwords(mirror)).inc()

    def upstream_throughput(self, mirror: str, rate: float) -> None:
        self._throughput.labels(hide_passwords(mirror)).set(rate)

    def prefetched(self, kind: str) -> None:
        self._prefetches.labels(kind).inc()

    def prefetch_used(self, kind: str) -> None:
        self._prefetches_used.labels(kind).inc()

    def upstream_latency(self, mirror: str, seconds: float) -> None:
        self._upstream_latency.labels(hide_passwords(mirror)).observe(seconds)

    def policy_hidden(self, policy: str, count: int = 1) -> None:
        self._policy_hidden.labels(policy).inc(count)

    def hidden(self) -> dict[str, int]:
        """What the policy hid so far, by key (for the status page)."""
        return {
            sample.labels["policy"]: int(sample.value)
            for family in self._policy_hidden.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        }

    def traffic(self) -> Traffic:
        """This process's answers and bytes since it started, for the status page."""

        def answers(kind: str, result: str | None = None) -> int:
            return _total(
                self._cache,
                lambda labels: labels["kind"] == kind and result in (None, labels["result"]),
            )

        return Traffic(
            file_hits=answers("file", "HIT"),
            file_answers=answers("file"),
            page_hits=answers("page", "HIT"),
            page_answers=answers("page"),
            served=_total(self._sent_bytes, lambda labels: _kind(labels["route"]) == "file"),
            fetched=_total(self._fetched_bytes),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _kind(route: str) -> str:
    if route.startswith("/conda/"):
        return "conda"
    return "file" if "/files/" in route else "page"


def _total(counter: Counter, where: Callable[[dict[str, str]], bool] = lambda _: True) -> int:
    """The sum of a counter's values over the label sets that pass `where`."""
    return int(
        sum(
            sample.value
            for family in counter.collect()
            for sample in family.samples
            if sample.name.endswith("_total") and where(sample.labels)
        )
    )
