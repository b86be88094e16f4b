"""Tiers of proxies: a lab proxy whose upstream is a campus proxy (over the fake upstreams),
with the mirror itself listed after it. What a page says of each file survives the two
tiers unchanged; pip and uv install through the lab; with the campus down the lab fails over
to the mirror, and with both down it serves what it has."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
from support.clients import install
from support.process import proxy_process
from support.world import TINYAPP, TINYLIB, WITH_METADATA, World

JSON = "application/vnd.pypi.simple.v1+json"
# What a file entry says, but where it is (each proxy links to itself).
SAID = ("filename", "hashes", "size", "upload-time", "yanked", "requires-python",
        "core-metadata", "data-dist-info-metadata")  # fmt: skip


def _page(base: str, project: str) -> dict[str, dict[str, Any]]:
    page = httpx.get(f"{base}/simple/{project}/", headers={"Accept": JSON}, timeout=30).json()
    return {f["filename"]: {k: f.get(k) for k in SAID} for f in page["files"]}


def test_two_tiers_keep_every_file_s_facts_and_fail_over_to_the_mirror(
    world: World, tmp_path: Path
) -> None:
    mirror = world.mirror.root_url(world.mirror_url)
    campus_settings = {"upstreams": {"pypi": {"mirrors": [mirror]}},
                       "cache": {"dir": str(tmp_path / "campus")}}  # fmt: skip
    with proxy_process(campus_settings, tmp_path) as (campus, campus_base):
        lab_settings = {
            "upstreams": {"pypi": {"mirrors": [f"{campus_base}/simple/", mirror]}},
            "cache": {"dir": str(tmp_path / "lab"), "page_ttl": 0},  # every page asked anew
            "circuit": {"probe_interval": 60},
        }
        with proxy_process(lab_settings, tmp_path) as (_, lab_base):
            for project in ("tinylib", "metapkg"):
                assert _page(lab_base, project) == _page(campus_base, project)
            metadata = _page(lab_base, "metapkg")[WITH_METADATA.filename]["core-metadata"]
            assert metadata == {"sha256": WITH_METADATA.metadata_sha256}
            assert _page(lab_base, "tinylib")[TINYLIB.filename]["size"] == TINYLIB.size
            for client in ("pip", "uv"):
                got = install(client, f"{lab_base}/simple/", tmp_path / client, "tinyapp")
                assert got == {"tinyapp": "1.0", "tinylib": "1.1"}
            world.mirror.reset_log()
            campus.send_signal(signal.SIGKILL)
            campus.wait(timeout=10)
            # The campus is gone: the lab asks the mirror itself.
            assert _page(lab_base, "tinydep")  # not asked before: only the mirror can answer
            assert world.mirror.count("/simple/tinydep/") >= 1
            world.mirror.page_faults.status = 503
            world.mirror.file_faults.status = 503
            # Both gone: what the lab has is still served.
            assert _page(lab_base, "tinylib")
            for wheel in (TINYLIB, TINYAPP):
                url = f"{lab_base}/files/{wheel.project}/{wheel.filename}"
                assert httpx.get(url, timeout=30).content == wheel.content
