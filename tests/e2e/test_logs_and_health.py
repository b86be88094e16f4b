"""The access log (one line per request, as text or JSON) and `/-/health` saying whether the
proxy can serve."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import httpx
import pytest
from support.process import proxy_process
from support.servers import serve
from support.world import TINYLIB, World

from proxy import create_app
from proxy.server.logs import JsonFormatter


def test_one_access_line_per_request_with_cache_result(
    world: World, proxy: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pypi_proxy.access")
    url = f"{proxy}/files/tinylib/{TINYLIB.filename}"
    httpx.get(f"{proxy}/simple/tinylib/").raise_for_status()
    httpx.get(url).raise_for_status()
    httpx.get(url, headers={"Range": "bytes=0-9"}).raise_for_status()
    httpx.get(f"{proxy}/simple/no_such-thing!/")

    lines = [r for r in caplog.records if r.name == "pypi_proxy.access"]
    fields = [r.fields for r in lines]  # type: ignore[attr-defined]
    assert [(f["path"], f["status"], f["cache"]) for f in fields] == [
        ("/simple/tinylib/", 200, "MISS"),
        (f"/files/tinylib/{TINYLIB.filename}", 200, "MISS"),
        (f"/files/tinylib/{TINYLIB.filename}", 206, "HIT"),
        ("/simple/no_such-thing!/", 404, ""),
    ]
    assert fields[1]["sent"] == TINYLIB.size and fields[2]["sent"] == 10
    assert all(f["client"] == "127.0.0.1" and f["duration"] >= 0 for f in fields)
    assert lines[2].getMessage().endswith(" HIT")
    assert (
        lines[2]
        .getMessage()
        .startswith(f'127.0.0.1 "GET /files/tinylib/{TINYLIB.filename}" 206 10 ')
    )


def test_json_log_format(world: World, tmp_path: Path) -> None:
    log = tmp_path / "proxy.log"
    config = {"upstreams": {"pypi": {"mirrors": [world.mirror.root_url(world.mirror_url)]}}}
    with proxy_process(
        config, tmp_path, "--log-format", "json", cache_dir=world.cache_dir, log=log
    ) as (_, base):
        httpx.get(f"{base}/simple/tinylib/").raise_for_status()
    records = [json.loads(line) for line in log.read_text().splitlines()]  # every line is JSON
    access = [r for r in records if r["logger"] == "pypi_proxy.access"]
    page = next(r for r in access if r["path"] == "/simple/tinylib/")
    assert page["status"] == 200 and page["cache"] == "MISS" and page["sent"] > 0
    assert {"time", "level", "message"} <= page.keys()
    assert any(r["logger"].startswith("uvicorn") for r in records)  # the server's own lines too


def test_health_says_whether_the_proxy_can_serve(world: World, proxy: str) -> None:
    health = httpx.get(f"{proxy}/-/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"

    # Every mirror of an upstream down: still serving what is cached, so 200, but degraded.
    world.torch.page_faults.status = 503
    for n in range(3):
        httpx.get(f"{proxy}/simple/torch{n}/")  # routed to the mirror, then to the dead torch
    health = httpx.get(f"{proxy}/-/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "degraded"
    assert "upstream pytorch: every mirror is down" in health.json()["problems"]

    # The cache cannot be written: not serving.
    tmp = world.cache_dir / "tmp"
    shutil.rmtree(tmp)
    tmp.write_text("in the way")
    health = httpx.get(f"{proxy}/-/health")
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert health.json()["problems"][0].startswith("cache not writable")
    tmp.unlink()
    tmp.mkdir()
    assert httpx.get(f"{proxy}/-/health").status_code == 200


def test_a_mirror_password_never_leaves_the_proxy(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A private mirror's credentials in its URL are sent to it, and shown nowhere."""
    secret = "s3cret-Pa55"
    private = world.mirror.root_url(world.mirror_url).replace("://", f"://lab:{secret}@")
    caplog.set_level(logging.INFO)
    formatter = JsonFormatter()
    config = world.config(
        upstreams={"pypi": {"mirrors": [private]}},
        routes=[{"projects": ["*"], "upstreams": ["pypi"]}],
    )
    with serve(create_app(config)) as base:
        assert httpx.get(f"{base}/simple/tinylib/").status_code == 200
        world.mirror.page_faults.status = 503
        failed = httpx.get(f"{base}/simple/tinyapp/")
        assert failed.status_code == 503 and "lab:***@" in failed.text
        shown = [failed.text] + [
            httpx.get(f"{base}{p}").text for p in ("/", "/-/health", "/metrics")
        ]
    assert world.mirror.requests[0].headers["authorization"].startswith("Basic ")
    assert "lab:***@" in shown[2]  # /-/health names the mirror, masked
    logged = [formatter.format(r) for r in caplog.records]
    assert any("lab:***@" in line for line in logged)
    for text in shown + logged:
        assert secret not in text
