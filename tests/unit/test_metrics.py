"""The metrics: counted by route and cache result, summed for the status page, and no mirror
password in a label."""

from __future__ import annotations

from proxy.server.metrics import Metrics


def test_answers_and_bytes_add_up_for_the_status_page() -> None:
    metrics = Metrics()
    metrics.record("/files/{project}/{filename}", 200, 1000, "MISS")
    metrics.record("/files/{project}/{filename}", 200, 1000, "HIT")
    metrics.record("/files/{project}/{filename}", 206, 10, "HIT")
    metrics.record("/simple/{project}/", 200, 500, "HIT")
    metrics.record("/simple/{project}/", 200, 500, "STALE")
    metrics.record("/-/health", 200, 50, "")
    metrics.upstream_bytes(1000)
    traffic = metrics.traffic()
    assert (traffic.file_hits, traffic.file_answers) == (2, 3)
    assert (traffic.page_hits, traffic.page_answers) == (1, 2)
    assert (traffic.served, traffic.fetched) == (2010, 1000)


def test_the_exposition_names_routes_and_masks_passwords() -> None:
    metrics = Metrics()
    metrics.record("/simple/{project}/", 404, 20, "")
    metrics.upstream_error("https://lab:secret@m.test/simple/")
    metrics.upstream_latency("https://lab:secret@m.test/simple/", 0.25)
    metrics.watch(lambda: 2, lambda: 12345)
    text = metrics.render().decode()
    assert 'pypi_proxy_requests_total{route="/simple/{project}/",status="404"} 1.0' in text
    assert 'pypi_proxy_upstream_errors_total{mirror="https://lab:***@m.test/simple/"} 1.0' in text
    assert "secret" not in text
    assert "pypi_proxy_fills_in_flight 2.0" in text and "pypi_proxy_cache_bytes 12345.0" in text
