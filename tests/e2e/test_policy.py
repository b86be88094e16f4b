"""Policies on the wire: a cooldown, an absolute date, a break-glass list, advisories loaded
from files (and reloaded), and allow/deny lists, with real pip and uv as clients."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.clients import install, run
from support.upstream import JSON_V1
from support.waiting import wait_for
from support.wheels import make_wheel
from support.world import World
from uv import find_uv_bin

from proxy.core.units import format_upload_time

DAY = 86400
# coolpkg: 1.0 a month old, 1.1 ten days old, 1.2 two days old.
AGES = {"1.0": 30, "1.1": 10, "1.2": 2}
COOL = {v: make_wheel("coolpkg", v) for v in AGES}


def days_ago(days: float) -> str:
    return format_upload_time(time.time() - days * DAY)


@pytest.fixture
def cool(world: World) -> World:
    for version, dist in COOL.items():
        world.mirror.add(dist, metadata=True, upload_time=days_ago(AGES[version]))
    return world


@pytest.fixture
def cooled(cool: World) -> Iterator[str]:
    with cool.proxy(policy={"min_age": "7d"}) as base:
        yield base


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_cooldown_resolves_the_newest_version_old_enough(
    cooled: str, tool: str, tmp_path: Path
) -> None:
    assert install(tool, f"{cooled}/simple/", tmp_path, "coolpkg")["coolpkg"] == "1.1"


def test_hidden_files_leave_pages_and_their_urls_answer_404(cooled: str) -> None:
    with httpx.Client(base_url=cooled, timeout=10) as client:
        page = client.get("/simple/coolpkg/", headers={"Accept": JSON_V1}).json()
        assert [f["filename"] for f in page["files"]] == [COOL[v].filename for v in ("1.0", "1.1")]
        assert page["versions"] == ["1.0", "1.1"]
        html = client.get("/simple/coolpkg/").text
        assert COOL["1.1"].filename in html and COOL["1.2"].filename not in html
        url = f"/files/coolpkg/{COOL['1.2'].filename}"
        for response in (
            client.get(url),
            client.head(url),
            client.get(url, headers={"Range": "bytes=0-9"}),
            client.get(url + ".metadata"),
        ):
            assert response.status_code == 404
        assert "min_age" in client.get(url).text
        assert client.get(f"/files/coolpkg/{COOL['1.1'].filename}").content == COOL["1.1"].content
        metrics = client.get("/metrics").text
        assert 'pypi_proxy_policy_hidden_total{policy="min_age"}' in metrics


def test_the_allow_list_brings_one_version_back(cool: World, tmp_path: Path) -> None:
    policy = {"min_age": "7d", "allow": ["coolpkg==1.2"]}
    with cool.proxy(policy=policy) as base:
        assert install("pip", f"{base}/simple/", tmp_path, "coolpkg")["coolpkg"] == "1.2"


def test_exclude_newer_hides_by_date(cool: World, tmp_path: Path) -> None:
    with cool.proxy(policy={"exclude_newer": days_ago(20)}) as base:
        assert install("uv", f"{base}/simple/", tmp_path, "coolpkg")["coolpkg"] == "1.0"
        response = httpx.get(f"{base}/files/coolpkg/{COOL['1.1'].filename}", timeout=10)
        assert response.status_code == 404 and "exclude_newer" in response.text


def test_an_index_policy_overrides_the_top_level_key_by_key(cool: World) -> None:
    indexes = {
        "strict": {"routes": [{"projects": ["*"], "upstreams": ["pypi"]}]},
        "loose": {
            "policy": {"min_age": "1d"},
            "routes": [{"projects": ["*"], "upstreams": ["pypi"]}],
        },
    }
    with cool.proxy(policy={"min_age": "20d"}, indexes=indexes) as base:

        def versions(index: str) -> list[str]:
            url = f"{base}/{index}/simple/coolpkg/"
            return list(httpx.get(url, headers={"Accept": JSON_V1}, timeout=10).json()["versions"])

        assert versions("strict") == ["1.0"]
        assert versions("loose") == ["1.0", "1.1", "1.2"]


# -- upload times the upstream does not give ----------------------------------------------------


def upload_times(base: str, project: str) -> dict[str, str]:
    page = httpx.get(f"{base}/simple/{project}/", headers={"Accept": JSON_V1}, timeout=10).json()
    return {f["filename"]: f["upload-time"] for f in page["files"]}


def test_files_listed_without_a_time_keep_the_one_first_given(world: World) -> None:
    with world.proxy() as base:
        first = upload_times(base, "torch")
    assert set(first) == {"torch-2.3.1+cu121-py3-none-any.whl"}
    time.sleep(1.1)
    with world.proxy(cache={"dir": str(world.cache_dir), "page_ttl": 0}) as base:
        assert upload_times(base, "torch") == first  # refetched, restarted: the same time


def test_workers_agree_on_a_first_listing_time(world: World, tmp_path: Path) -> None:
    from support.process import proxy_process

    data = world.settings(cache={"dir": str(world.cache_dir), "page_ttl": 0})
    times: dict[int, set[str]] = {}  # worker pid -> the times it gave
    with proxy_process(data, tmp_path, "--workers", "2") as (_, base):
        deadline = time.monotonic() + 30
        while len(times) < 2 and time.monotonic() < deadline:
            # One connection, one worker: its pid and its page (fetched anew: page_ttl 0).
            with httpx.Client(base_url=base, timeout=10) as client:
                pid = client.get("/-/health").json()["pid"]
                page = client.get("/simple/onlytorch/", headers={"Accept": JSON_V1}).json()
            times.setdefault(pid, set()).add(json.dumps([f["upload-time"] for f in page["files"]]))
    assert len(times) == 2, "one worker answered every connection"
    assert len(set.union(*times.values())) == 1


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_exclude_newer_works_for_a_pytorch_like_upstream(
    proxy: str, tmp_path: Path, tool: str
) -> None:
    """uv's `--exclude-newer` and pip's `--uploaded-prior-to` need an upload time on every
    file, which the PyTorch-like upstream never gives."""
    uv, venv, index = find_uv_bin(), tmp_path / "venv", f"{proxy}/simple/"

    def fetch(before: str) -> None:
        if tool == "pip":
            run(sys.executable, "-m", "pip", "download", "--no-cache-dir", "--no-deps",
                "-d", tmp_path / "got", "--index-url", index, "--uploaded-prior-to", before,
                "torch")  # fmt: skip
        else:
            run(uv, "pip", "install", "--python", venv, "--index-url", index,
                "--cache-dir", tmp_path / "uv-cache", "--exclude-newer", before,
                "torch")  # fmt: skip

    if tool == "uv":
        run(uv, "venv", "--python", sys.executable, venv)
    with pytest.raises(AssertionError, match="torch"):
        fetch(days_ago(1))  # before the proxy first listed it
    fetch(days_ago(-1))


# -- advisories -----------------------------------------------------------------------------


def advisory(id: str, project: str, versions: list[str], **extra: Any) -> dict[str, Any]:
    affected = {"package": {"ecosystem": "PyPI", "name": project}, "versions": versions}
    return {"id": id, "modified": "2026-11-01T00:00:00Z", "affected": [affected], **extra}


def replace_file(path: Path, text: str) -> None:
    """As an operator copies a file in: whole, in one rename."""
    scratch = path.with_suffix(".tmp")
    scratch.write_text(text)
    scratch.replace(path)


def visible(base: str, project: str) -> list[str]:
    page = httpx.get(f"{base}/simple/{project}/", headers={"Accept": JSON_V1}, timeout=10).json()
    return list(page["versions"])


def test_a_malware_advisory_hides_a_version_until_the_file_drops_it(
    world: World, tmp_path: Path
) -> None:
    osv = tmp_path / "osv.json"
    replace_file(osv, json.dumps(advisory("MAL-2026-1", "TinyLib", ["1.1"])))
    with world.proxy(policy={"advisories": str(osv), "advisory_mode": "audit"}) as base:
        assert visible(base, "tinylib") == ["1.0"]
        response = httpx.get(f"{base}/files/tinylib/tinylib-1.1-py3-none-any.whl", timeout=10)
        assert response.status_code == 404 and "MAL-2026-1" in response.text
        assert install("pip", f"{base}/simple/", tmp_path / "pip", "tinylib")["tinylib"] == "1.0"
        replace_file(osv, json.dumps(advisory("MAL-2026-2", "other", ["1.0"])))
        wait_for(lambda: visible(base, "tinylib") == ["1.0", "1.1"], seconds=30)
        assert httpx.get(f"{base}/files/tinylib/tinylib-1.1-py3-none-any.whl").status_code == 200


def test_a_zip_or_a_directory_of_advisories_with_ranges(world: World, tmp_path: Path) -> None:
    import zipfile

    ranged = advisory("GHSA-aaaa", "tinylib", [], database_specific={"severity": "HIGH"})
    ranged["affected"][0]["ranges"] = [
        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}
    ]
    folder = tmp_path / "osv"
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "GHSA-aaaa.json").write_text(json.dumps(ranged))
    with zipfile.ZipFile(tmp_path / "osv.zip", "w") as archive:
        archive.writestr("GHSA-aaaa.json", json.dumps(ranged))
    for path in (folder, tmp_path / "osv.zip"):
        policy = {"advisories": str(path), "block_severity": "high"}
        with world.proxy(policy=policy) as base:
            assert visible(base, "tinylib") == ["1.1"]
        with world.proxy(policy={**policy, "waivers": ["GHSA-aaaa"]}) as base:
            assert visible(base, "tinylib") == ["1.0", "1.1"]


def test_audit_mode_only_logs_what_block_mode_would_hide(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    osv = tmp_path / "osv.json"
    osv.write_text(json.dumps(advisory("GHSA-bbbb", "tinylib", ["1.1"],
                                       database_specific={"severity": "CRITICAL"})))  # fmt: skip
    policy = {"advisories": str(osv), "advisory_mode": "audit", "block_severity": "high"}
    with caplog.at_level(logging.WARNING, "pypi_proxy.policy"), world.proxy(policy=policy) as base:
        assert visible(base, "tinylib") == ["1.0", "1.1"]
        httpx.get(f"{base}/files/tinylib/tinylib-1.1-py3-none-any.whl", timeout=10)
    audits = [r.getMessage() for r in caplog.records if "audit" in r.getMessage()]
    assert len(audits) == 2 and all("GHSA-bbbb" in line for line in audits)


# -- allow and deny lists -------------------------------------------------------------------


def test_a_denied_project_is_never_fetched(world: World) -> None:
    with world.proxy(policy={"deny": ["tiny*"]}) as base, httpx.Client(base_url=base) as client:
        response = client.get("/simple/tinyapp/")
        assert response.status_code == 404 and "deny" in response.text
        assert client.get("/files/tinylib/tinylib-1.1-py3-none-any.whl").status_code == 404
        assert client.get("/simple/bigpkg/").status_code == 200
        names = client.get("/simple/").text
        assert "bigpkg" in names and "tinyapp" not in names
    assert world.mirror.count("/simple/tinyapp/") == 0
    assert world.mirror.count("/simple/tinylib/") == 0


def test_only_serves_nothing_else(world: World) -> None:
    policy = {"only": ["tinylib", "tinyapp"], "deny": ["tinyapp"]}
    with world.proxy(policy=policy) as base, httpx.Client(base_url=base) as client:
        assert client.get("/simple/tinylib/").status_code == 200
        refused = client.get("/simple/bigpkg/")
        assert refused.status_code == 404 and "only" in refused.text
        assert "deny" in client.get("/simple/tinyapp/").text  # deny wins
        assert re.findall(r">([^<]+)</a>", client.get("/simple/").text) == ["tinylib"]
    assert world.mirror.count("/simple/bigpkg/") == 0
