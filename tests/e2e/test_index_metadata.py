"""PEP 792 project status, PEP 740 provenance and PEP 708 tracks and alternate locations, as
an upstream gives them, reaching a raw JSON client, pip and uv through the proxy."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from support.clients import install
from support.upstream import HTML_V1, JSON_V1
from support.wheels import make_wheel
from support.world import World

DIST = make_wheel("statuspkg", "1.0")
FILE_PATH = f"/packages/{DIST.filename}"
PROVENANCE_PATH = f"/integrity/statuspkg/1.0/{DIST.filename}/provenance"
PROVENANCE = json.dumps({"version": 1, "attestation_bundles": [{"publisher": {"kind": "test"}}]})
TRACKS = "https://upstream.test/simple/statuspkg/"
ALTERNATE = "https://alternate.test/simple/statuspkg/"


@pytest.fixture
def described(world: World) -> World:
    """The mirror says all of it, in JSON and in HTML."""
    document = {
        "meta": {"api-version": "1.4", "tracks": [TRACKS]},
        "name": "statuspkg",
        "project-status": {"status": "archived", "reason": "no longer maintained"},
        "alternate-locations": [ALTERNATE],
        "files": [
            {"filename": DIST.filename, "url": f"../..{FILE_PATH}",
             "hashes": {"sha256": DIST.sha256}, "size": DIST.size,
             "provenance": f"../..{PROVENANCE_PATH}"}
        ],
    }  # fmt: skip
    html = f"""<!DOCTYPE html><html><head>
<meta name="pypi:repository-version" content="1.4">
<meta name="pypi:project-status" content="archived">
<meta name="pypi:project-status-reason" content="no longer maintained">
<meta name="pypi:tracks" content="{TRACKS}">
<meta name="pypi:alternate-locations" content="{ALTERNATE}">
</head><body><a href="../..{FILE_PATH}#sha256={DIST.sha256}"
 data-provenance="../..{PROVENANCE_PATH}">{DIST.filename}</a></body></html>"""
    world.mirror.add_raw_page("statuspkg", json.dumps(document).encode(), JSON_V1)
    world.mirror.add_raw_page("statuspkg", html.encode(), HTML_V1)
    world.mirror.add_blob(FILE_PATH, DIST.content)
    world.mirror.add_blob(PROVENANCE_PATH, PROVENANCE.encode())
    return world


def test_a_json_client_gets_the_fields_and_the_provenance_through_the_proxy(
    described: World,
) -> None:
    with described.proxy() as base, httpx.Client(timeout=10) as client:
        page = client.get(f"{base}/simple/statuspkg/", headers={"Accept": JSON_V1}).json()
        assert page["project-status"] == {"status": "archived", "reason": "no longer maintained"}
        assert page["meta"]["tracks"] == [TRACKS]
        assert page["alternate-locations"] == [ALTERNATE]
        provenance = page["files"][0]["provenance"]
        assert provenance == f"{base}/files/statuspkg/{DIST.filename}.provenance"
        for _ in range(2):
            response = client.get(provenance)
            assert response.status_code == 200 and response.text == PROVENANCE
            assert response.headers["content-type"].startswith("application/vnd.pypi.integrity")
        assert described.mirror.count(PROVENANCE_PATH) == 1  # fetched once, then kept
        missing = client.get(f"{base}/files/tinylib/tinylib-1.1-py3-none-any.whl.provenance")
        assert missing.status_code == 404


def test_html_carries_them_with_the_provenance_absolute_for_the_host_used(
    described: World,
) -> None:
    with described.proxy() as base:
        port = base.rsplit(":", 1)[1]
        html = httpx.get(f"http://localhost:{port}/simple/statuspkg/", timeout=10).text
    assert '<meta name="pypi:project-status" content="archived">' in html
    assert '<meta name="pypi:project-status-reason" content="no longer maintained">' in html
    assert f'<meta name="pypi:tracks" content="{TRACKS}">' in html
    assert f'<meta name="pypi:alternate-locations" content="{ALTERNATE}">' in html
    url = f"http://localhost:{port}/files/statuspkg/{DIST.filename}.provenance"
    assert f'data-provenance="{url}"' in html


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_pip_and_uv_install_a_project_that_says_all_of_it(
    described: World, tool: str, tmp_path: Path
) -> None:
    with described.proxy() as base:
        assert install(tool, f"{base}/simple/", tmp_path, "statuspkg") == {"statuspkg": "1.0"}


def test_a_project_routed_to_one_upstream_carries_only_what_that_one_says(
    world: World,
) -> None:
    """torch is routed to the PyTorch-like upstream, which says nothing of it; the mirror's
    word on its own torch (quarantined, tracking elsewhere) must not reach the page."""
    decoy = {
        "meta": {"api-version": "1.4", "tracks": [TRACKS]},
        "name": "torch",
        "project-status": {"status": "quarantined"},
        "files": [],
    }
    world.mirror.add_raw_page("torch", json.dumps(decoy).encode(), JSON_V1)
    with world.proxy() as base:
        page = httpx.get(f"{base}/simple/torch/", headers={"Accept": JSON_V1}, timeout=10).json()
    assert [f["filename"] for f in page["files"]] == ["torch-2.3.1+cu121-py3-none-any.whl"]
    assert "project-status" not in page and "tracks" not in page["meta"]
