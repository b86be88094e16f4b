"""The status page at `/`, loaded in a real headless Chromium: every mirror and index is on
it, a download in progress shows its progress, and the pip.ini it offers makes pip install
through the proxy."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from support.clients import pip_install_configured
from support.process import free_port
from support.waiting import wait_for
from support.world import BIG, World

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/run installs it)")

# Where the README's screenshot comes from: `SCREENSHOT=docs/status-page.png pytest -k status`.
SCREENSHOT = os.environ.get("SCREENSHOT")

INDEXES = {
    name: {"routes": [{"projects": ["*"], "upstreams": ["pypi", "pytorch"]}]}
    for name in ("cu121", "cpu")
}


def chromium(*args: str, user_data: Path) -> str:
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-extensions", "--no-first-run",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={user_data}", *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


class Dom(HTMLParser):
    """Text by element id, and all text, of the DOM Chromium built."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.text: list[str] = []
        self._open: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("meta", "link", "br", "input", "img"):
            self._open.append(dict(attrs).get("id"))

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag not in ("meta", "link", "br", "input", "img"):
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for ident in filter(None, self._open):
            self.by_id[ident] = self.by_id.get(ident, "") + data


def load_status_page(world: World, base: str, profile: Path) -> Dom:
    """The status page as Chromium shows it after some traffic: a mirror that failed, a page
    served twice (a hit), and a download held half-way."""
    for n in range(3):  # the good mirror says 404, so the dead one is asked: its circuit opens
        httpx.get(f"{base}/simple/nosuch{n}/", timeout=10)
    for _ in range(2):
        httpx.get(f"{base}/simple/tinyapp/", timeout=10).raise_for_status()
    gate = world.mirror.file_faults.gate = threading.Event()
    url = f"{base}/files/bigpkg/{BIG.filename}"
    reader = threading.Thread(target=httpx.get, args=(url,), kwargs={"timeout": 30})
    reader.start()
    try:
        wait_for(lambda: world.mirror.count(BIG.filename) == 1, seconds=10)
        # The browser reaches the proxy by "localhost": the page must say so too.
        page = base.replace("127.0.0.1", "localhost") + "/"
        dom = Dom(chromium("--dump-dom", page, user_data=profile))
        if SCREENSHOT:
            chromium(f"--screenshot={Path(SCREENSHOT).resolve()}", "--window-size=900,1500",
                     page, user_data=profile)  # fmt: skip
        return dom
    finally:
        gate.set()
        reader.join(timeout=30)


def test_status_page_in_chromium(world: World, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/simple/"  # nothing listens there
    world.more_mirrors = [down]
    with world.proxy(indexes=INDEXES) as base:
        dom = load_status_page(world, base, tmp_path / "profile")

        mirrors = dom.by_id["mirrors"]
        for mirror in (
            world.mirror.root_url(world.mirror_url),
            down,
            world.torch.root_url(world.torch_url),
        ):
            assert mirror in mirrors
        assert "down, next try in" in mirrors and "ConnectError" in mirrors  # the dead mirror
        assert "50% (1 of 2)" in dom.by_id["cache"]  # tinyapp's page: a miss, then a hit
        assert BIG.filename in dom.by_id["downloads"] and "%)" in dom.by_id["downloads"]
        for name in INDEXES:
            assert name in dom.by_id[f"index-{name}"]
        assert "cpu/simple/" in dom.by_id["cpu-pip-windows"]
        assert r"$env:APPDATA\pip\pip.ini" in dom.by_id["cu121-pip-powershell"]

        # The Windows pip.ini block of the default index, copied as is, makes pip work.
        text = dom.by_id["cu121-pip-windows"]
        ini = configparser.ConfigParser()
        ini.read_string(text)
        port = base.rsplit(":", 1)[1]
        assert dict(ini["global"]) == {
            "index-url": f"http://localhost:{port}/simple/",
            "trusted-host": "localhost",
        }
        (tmp_path / "pip.ini").write_text(text)
        installed = pip_install_configured(tmp_path / "pip.ini", tmp_path / "target", "tinyapp")
        assert installed == {"tinyapp": "1.0", "tinylib": "1.1"}
