"""The status page at `/`, in a real headless Chromium (Debian's, driven by Playwright): every
mirror and index is on it, a download in progress shows its progress and then its end without
a reload, and the pip.ini its Copy button puts on the clipboard makes pip install through the
proxy."""

from __future__ import annotations

import configparser
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from support.clients import pip_install_configured
from support.process import free_port
from support.waiting import wait_for
from support.world import BIG, World

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (a test extra)")
if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/run installs it)")

# Where the README's screenshot comes from: `SCREENSHOT=docs/status-page.png pytest -k status`.
SCREENSHOT = os.environ.get("SCREENSHOT")

INDEXES = {
    name: {"routes": [{"projects": ["*"], "upstreams": ["pypi", "pytorch"]}]}
    for name in ("cu121", "cpu")
}


@pytest.fixture
def browser() -> Iterator[BrowserContext]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking",
                  # A LAN name for the proxy: a page there is not a secure context.
                  "--host-resolver-rules=MAP proxy.lan.test 127.0.0.1"],
            timeout=30_000,
        )  # fmt: skip
        context = chromium.new_context(
            permissions=["clipboard-read", "clipboard-write"],
            viewport={"width": 900, "height": 1500},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            chromium.close()


def some_traffic(world: World, base: str) -> None:
    """A mirror that fails, and a page served twice (a miss, then a hit)."""
    for n in range(3):  # the good mirror says 404, so the dead one is asked: its circuit opens
        httpx.get(f"{base}/simple/nosuch{n}/", timeout=10)
    for _ in range(2):
        httpx.get(f"{base}/simple/tinyapp/", timeout=10).raise_for_status()


def test_status_page_in_chromium(world: World, browser: BrowserContext, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/simple/"  # nothing listens there
    world.more_mirrors = [down]
    gate = world.mirror.file_faults.gate = threading.Event()
    # Served on loopback only (and saying so): the page cannot send other machines to the
    # LAN address (see the unit tier), so the setup it shows is for this one.
    with world.proxy(indexes=INDEXES, listen={"host": "127.0.0.1"}) as base:
        some_traffic(world, base)
        url = f"{base}/files/bigpkg/{BIG.filename}"  # held half-way while the page loads
        reader = threading.Thread(target=httpx.get, args=(url,), kwargs={"timeout": 30})
        reader.start()
        try:
            wait_for(lambda: world.mirror.count(BIG.filename) == 1, seconds=10)
            page = browser.new_page()
            # The browser reaches the proxy by "localhost": the page must say so too.
            page.goto(base.replace("127.0.0.1", "localhost") + "/?refresh=1")
            if SCREENSHOT:
                page.screenshot(path=SCREENSHOT)
            downloads = page.inner_text("#downloads")
            assert BIG.filename in downloads and "%)" in downloads
            gate.set()
            # Live figures: the download ends, and the page says so without being reloaded.
            sync_api.expect(page.locator("#downloads")).to_have_text("No downloads in progress.")
            sync_api.expect(page.locator("#cache")).to_contain_text("3.1 MB (no size limit)")
        finally:
            gate.set()
            reader.join(timeout=30)

        mirrors = page.inner_text("#mirrors")
        for mirror in (world.mirror.root_url(world.mirror_url), down):
            assert mirror in mirrors
        assert world.torch.root_url(world.torch_url) in mirrors
        assert "down, next try in" in mirrors and "ConnectError" in mirrors  # the dead mirror
        assert "50% (1 of 2)" in page.inner_text("#cache")  # tinyapp's page: a miss, a hit
        for name in INDEXES:
            assert name in page.inner_text(f"#index-{name} summary")
        assert "/cpu/simple/" in (page.text_content("#cpu-pip-windows") or "")
        assert r"$env:APPDATA\pip\pip.ini" in (page.text_content("#cu121-pip-powershell") or "")

        # Copy the Windows pip.ini of the default index, as a teacher would.
        button = page.locator('button[data-copy="cu121-pip-windows"]')
        button.click()
        sync_api.expect(button).to_have_text("Copied")
        copied = page.evaluate("navigator.clipboard.readText()")
        ini = configparser.ConfigParser()
        ini.read_string(copied)
        port = base.rsplit(":", 1)[1]
        assert dict(ini["global"]) == {
            "index-url": f"http://localhost:{port}/simple/",
            "trusted-host": "localhost",
        }
        (tmp_path / "pip.ini").write_text(copied)
        installed = pip_install_configured(tmp_path / "pip.ini", tmp_path / "target", "tinyapp")
        assert installed == {"tinyapp": "1.0", "tinylib": "1.1"}


def test_over_plain_http_on_the_lan_copy_selects_the_text(
    world: World, browser: BrowserContext
) -> None:
    """Over http on a LAN address the clipboard API is not there: Copy selects the block for
    the user's own Ctrl+C (and tries the old copy command), and the setup names that host."""
    with world.proxy() as base:
        page = browser.new_page()
        port = base.rsplit(":", 1)[1]
        page.goto(f"http://proxy.lan.test:{port}/?refresh=0")
        assert page.evaluate("window.isSecureContext") is False
        button = page.locator('button[data-copy$="-pip-linux"]').first
        button.click()
        sync_api.expect(button).to_have_text("Copied")
        selected = page.evaluate("getSelection().toString()")
    ini = configparser.ConfigParser()
    ini.read_string(selected)
    assert dict(ini["global"]) == {
        "index-url": f"http://proxy.lan.test:{port}/simple/",
        "trusted-host": "proxy.lan.test",
    }
