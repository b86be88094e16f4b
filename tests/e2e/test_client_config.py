"""`pypi-proxy client-config`: what it prints makes pip install through the proxy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from support.clients import pip_install_configured
from support.world import World

COMMAND = [sys.executable, "-m", "proxy.cli", "client-config"]


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
    # The machine's LAN address, read from its interfaces: not a host name other machines
    # may not resolve, and not loopback.
    found = re.search(r"index-url = http://(\d+\.\d+\.\d+\.\d+):3141/cpu/simple/", out)
    assert found and not found.group(1).startswith("127."), out
    wrong = subprocess.run([*COMMAND, "--index", "cu999"], capture_output=True, text=True,
                           timeout=30)  # fmt: skip
    assert wrong.returncode == 2 and "no index named 'cu999'" in wrong.stderr
