"""Client setup text: it parses as what it claims to be, and pip installs with it."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.clients import pip_install_configured
from support.world import World

from proxy.core.client_setup import client_setup, pip_ini

COMMAND = [sys.executable, "-m", "proxy.cli", "client-config"]


def _ini(text: str) -> configparser.ConfigParser:
    block = text[text.index("[global]") :].split("\n\n")[0]
    parser = configparser.ConfigParser()
    parser.read_string(block)
    return parser


def test_pip_ini_asks_for_trusted_host_only_over_plain_http() -> None:
    plain = _ini(pip_ini("http://10.0.0.5:3141/simple/"))
    assert dict(plain["global"]) == {
        "index-url": "http://10.0.0.5:3141/simple/",
        "trusted-host": "10.0.0.5",
    }
    assert "trusted-host" not in _ini(pip_ini("https://proxy.lab.test/simple/"))["global"]


def test_every_client_for_every_system() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    url = "http://10.0.0.5:3141/cu118/simple/"
    for system in ("windows", "linux", "macos"):
        text = client_setup(url, system)
        assert _ini(text)["global"]["index-url"] == url
        uv = text[text.index("[[index]]") :].split("\n\n")[0]
        assert tomllib.loads(uv) == {"index": [{"url": url, "default": True}]}
        assert f"poetry source add --priority=primary lan {url}" in text
        assert f"pip config set global.index-url {url}" in text
    windows = client_setup(url, "windows")
    assert r"%APPDATA%\pip\pip.ini" in windows and "Set-Content" in windows


def test_pip_installs_with_the_printed_pip_ini(world: World, proxy: str, tmp_path: Path) -> None:
    printed = subprocess.run(
        [*COMMAND, "--os", "linux", "--url", f"{proxy}/simple/"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    config = tmp_path / "pip.conf"
    config.write_text(printed[printed.index("[global]") :].split("\n\n")[0] + "\n")
    installed = pip_install_configured(config, tmp_path / "target", "tinyapp")
    assert installed == {"tinyapp": "1.0", "tinylib": "1.1"}


def test_client_config_from_the_bundled_config_and_a_wrong_index() -> None:
    out = subprocess.run([*COMMAND, "--index", "cpu", "--os", "linux"], capture_output=True,
                         text=True, timeout=30, check=True).stdout  # fmt: skip
    assert re.search(r"index-url = http://\S+:3141/cpu/simple/", out)
    wrong = subprocess.run([*COMMAND, "--index", "cu999"], capture_output=True, text=True,
                           timeout=30)  # fmt: skip
    assert wrong.returncode == 2 and "no index named 'cu999'" in wrong.stderr
