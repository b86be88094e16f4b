"""The status page, rendered from a snapshot: what it says of mirrors, cache, traffic and
downloads, the setup per index, and that nothing from upstream reaches it unescaped."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

from proxy.core.health import MirrorReport, State
from proxy.core.status_page import (
    CacheFigures,
    DownloadProgress,
    Snapshot,
    StoreFigures,
    Traffic,
    render_status,
)


def report(url: str, **fields: object) -> MirrorReport:
    values: dict[str, object] = {
        "state": State.CLOSED, "consecutive_failures": 0, "last_error": None,
        "last_error_age_s": None, "latency_ms": None, "next_probe_in_s": None,
    }  # fmt: skip
    values.update(fields)
    return MirrorReport(url=url, **values)  # type: ignore[arg-type]


SNAPSHOT = Snapshot(
    version="1.2.3",
    uptime=3 * 3600 + 20 * 60,
    mirrors={
        "pypi": [
            report("https://up.test/simple/", latency_ms=42.0),
            report(
                "https://down.test/simple/",
                state=State.OPEN,
                consecutive_failures=3,
                last_error="ConnectError: <refused>",
                last_error_age_s=90.0,
                next_probe_in_s=240.0,
            ),
            report("https://idle.test/simple/"),
        ]
    },
    cache=CacheFigures(
        files=12, bytes=3_100_000, max_size=10_000_000, disk_free=5 * 10**9, min_free=10**9
    ),
    traffic=Traffic(
        file_hits=3,
        file_answers=4,
        page_hits=1,
        page_answers=2,
        served=9_000_000,
        fetched=3_000_000,
    ),
    downloads=[DownloadProgress("torch-2.5.1+cu121-cp311-cp311-win_amd64.whl", 250, 1000)],
    indexes=[
        (
            "cu121",
            "http://10.0.0.5:3141/simple/",
            "torch 2.5.1 (CUDA 12.1, Linux driver 525.60.13 or newer)",
        ),
        ("cpu", "http://10.0.0.5:3141/cpu/simple/", "torch: not fetched yet"),
    ],
)


def text_of(html: str, element_id: str) -> str:
    """The text inside the element with this id."""

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.depth, self.parts = 0, []  # type: tuple[int, list[str]]

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if self.depth or dict(attrs).get("id") == element_id:
                self.depth += 1

        def handle_endtag(self, tag: str) -> None:
            self.depth = max(self.depth - 1, 0)

        def handle_data(self, data: str) -> None:
            if self.depth:
                self.parts.append(data)

    parser = Collect()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.parts)).strip()


def test_mirrors_with_their_state_latency_and_last_error() -> None:
    mirrors = text_of(render_status(SNAPSHOT), "mirrors")
    assert "https://up.test/simple/ up 42 ms" in mirrors
    assert "https://down.test/simple/ down, next try in 4 min" in mirrors
    assert "ConnectError: <refused> (2 min ago)" in mirrors  # unescaped only as text
    assert "https://idle.test/simple/ not asked yet" in mirrors


def test_cache_and_what_it_saved() -> None:
    html = render_status(SNAPSHOT)
    cache = text_of(html, "cache")
    assert "3.1 MB of 10.0 MB" in cache and "Files 12" in cache
    assert "File hit ratio 75% (3 of 4)" in cache and "Page hit ratio 50% (1 of 2)" in cache
    assert "Saved 6.0 MB of upstream traffic" in cache
    assert '<meter min="0" max="10000000" value="3100000">' in html


def test_downloads_in_progress() -> None:
    downloads = text_of(render_status(SNAPSHOT), "downloads")
    assert "torch-2.5.1+cu121-cp311-cp311-win_amd64.whl" in downloads
    assert "250 B of 1.0 kB (25%)" in downloads
    idle = render_status(Snapshot(**{**SNAPSHOT.__dict__, "downloads": []}))
    assert text_of(idle, "downloads") == "No downloads in progress."


def test_setup_for_every_index_with_the_default_open() -> None:
    html = render_status(SNAPSHOT)
    assert '<details class="index" id="index-cu121" open>' in html
    assert "torch 2.5.1 (CUDA 12.1, Linux driver 525.60.13 or newer)" in text_of(
        html, "index-cu121"
    )
    assert "torch: not fetched yet" in text_of(html, "index-cpu")
    assert '<details class="index" id="index-cpu">' in html
    assert "index-url = http://10.0.0.5:3141/cpu/simple/" in text_of(html, "cpu-pip-linux")
    assert "trusted-host = 10.0.0.5" in text_of(html, "cu121-pip-windows")
    assert 'data-copy="cpu-uv"' in html
    # One command per machine: the default index's script picks the build, the others pin theirs.
    fetch = "exec(u.urlopen('http://10.0.0.5:3141/{}').read())"
    assert fetch.format("setup.py") in text_of(html, "cu121-setup-windows")
    assert text_of(html, "cpu-setup").startswith("python3 -c ")
    assert fetch.format("cpu/setup.py") in text_of(html, "cpu-setup")


def test_nothing_from_outside_reaches_the_page_unescaped() -> None:
    hostile = "<script>alert(1)</script>"
    snapshot = Snapshot(
        **{
            **SNAPSHOT.__dict__,
            "mirrors": {"pypi": [report(f"https://x.test/{hostile}", last_error=hostile)]},
            "downloads": [DownloadProgress(hostile, 1, None)],
        }
    )
    html = render_status(snapshot)
    assert hostile not in html and "&lt;script&gt;" in html


def test_what_the_policy_hid_and_the_advisories_it_reads() -> None:
    assert text_of(render_status(SNAPSHOT), "policy") == ""
    snapshot = dataclasses.replace(
        SNAPSHOT, hidden={"min_age": 12, "advisory": 1}, advisories={"/srv/osv.zip": 20_143}
    )
    policy = text_of(render_status(snapshot), "policy")
    assert "Advisories 20,143 loaded from /srv/osv.zip" in policy
    assert "Hidden by policy advisory 1 · min_age 12" in policy


def test_the_object_store_tier_when_there_is_one() -> None:
    assert 'id="store"' not in render_status(SNAPSHOT)
    down = StoreFigures("s3://cache/lab", False, "HTTP error: <refused>", 3, 2, 5)
    html = render_status(Snapshot(**{**SNAPSHOT.__dict__, "store": down}))
    store = text_of(html, "store")
    assert "s3://cache/lab , unreachable (HTTP error: <refused>)" in store
    assert "3 files" in store and "2 pending, 5 failed so far" in store
    assert "<refused>" not in html  # escaped
