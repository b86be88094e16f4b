"""`/metrics` in the Prometheus text format, and its counters moving with traffic."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support.world import BIG, World


def _samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{base}/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_parse_and_move_with_traffic(world: World, proxy: str) -> None:
    page = ("pypi_proxy_cache_results_total", (("kind", "page"), ("result", "MISS")))
    before = _samples(proxy)
    assert before.get(page, 0) == 0

    httpx.get(f"{proxy}/simple/bigpkg/")
    httpx.get(f"{proxy}/simple/bigpkg/")
    url = f"{proxy}/files/bigpkg/{BIG.filename}"
    httpx.get(url, timeout=30)
    httpx.get(url, timeout=30)
    after = _samples(proxy)

    assert after[page] == 1
    assert after[("pypi_proxy_cache_results_total", (("kind", "page"), ("result", "HIT")))] == 1
    assert after[("pypi_proxy_cache_results_total", (("kind", "file"), ("result", "MISS")))] == 1
    assert after[("pypi_proxy_cache_results_total", (("kind", "file"), ("result", "HIT")))] == 1
    files = "/files/{project}/{filename}"
    assert after[("pypi_proxy_requests_total", (("route", files), ("status", "200")))] == 2
    assert after[("pypi_proxy_sent_bytes_total", (("route", files),))] == 2 * len(BIG.content)
    assert after[("pypi_proxy_upstream_bytes_total", ())] == len(BIG.content)
    assert after[("pypi_proxy_cache_bytes", ())] == len(BIG.content)
    assert after[("pypi_proxy_fills_in_flight", ())] == 0
    mirror = world.mirror.root_url(world.mirror_url)
    latency = ("pypi_proxy_upstream_latency_seconds_count", (("mirror", mirror),))
    assert after[latency] >= 2  # the page and the file


def test_upstream_errors_are_counted_by_mirror(world: World, proxy: str) -> None:
    world.mirror.page_faults.status = 500
    assert httpx.get(f"{proxy}/simple/tinylib/").status_code == 503
    mirror = world.mirror.root_url(world.mirror_url)
    assert _samples(proxy)[("pypi_proxy_upstream_errors_total", (("mirror", mirror),))] == 1
