"""Setup text for pip, uv, Poetry and PDM, as `client-config` prints it and the status page
shows it."""

from __future__ import annotations

import configparser

import pytest

from proxy.core.client_setup import client_setup, pip_ini


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


def test_one_command_per_machine_fetches_the_setup_script_beside_the_index() -> None:
    fetch = "import urllib.request as u; exec(u.urlopen('http://10.0.0.5:3141/{}').read())"
    windows = client_setup("http://10.0.0.5:3141/simple/", "windows")
    assert windows.startswith("setup script, one command per machine (picks the build for its GPU")
    assert f'py -c "{fetch.format("setup.py")}"\n' in windows
    linux = client_setup("http://10.0.0.5:3141/cu128/simple/", "linux")
    assert "(this index;" in linux
    assert f'python3 -c "{fetch.format("cu128/setup.py")}"\n' in linux
    assert "setup script" not in client_setup("http://10.0.0.5:3141/pypi/", "linux")
