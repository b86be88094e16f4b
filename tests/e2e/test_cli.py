"""The `pypi-proxy` command: a bad config stops it with the key path; `serve` starts the proxy
and tells clients where to point."""

from __future__ import annotations

import configparser
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from support.world import World

COMMAND = [sys.executable, "-m", "proxy.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_bad_config_stops_with_a_message_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "upstreams": {"pypi": {"mirrors": ["https://m.test/simple/"]}},
                "routes": [{"projects": ["torch"], "upstreams": ["pytroch"]}],
            }
        )
    )
    result = subprocess.run(
        [*COMMAND, "serve", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "routes[0].upstreams[0]: unknown upstream 'pytroch'" in result.stderr

    missing = subprocess.run(
        [*COMMAND, "serve", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_a_missing_advisory_file_stops_serve_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "policy.yaml"
    missing = tmp_path / "osv.zip"
    config.write_text(
        yaml.safe_dump(
            {
                "upstreams": {"pypi": {"mirrors": ["https://m.test/simple/"]}},
                "policy": {"advisories": str(missing)},
            }
        )
    )
    result = subprocess.run(
        [*COMMAND, "serve", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert f"policy.advisories: {missing}: no such file or directory" in result.stderr


def test_serve_prints_the_index_url_and_a_pip_ini_and_serves(world: World, tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "upstreams": {"pypi": {"mirrors": [world.mirror.root_url(world.mirror_url)]}},
                "cache": {"dir": str(tmp_path / "ignored")},
            }
        )
    )
    port = _free_port()
    cache = tmp_path / "from-the-command-line"
    process = subprocess.Popen(
        [
            *COMMAND,
            "serve",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--cache-dir",
            str(cache),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"{base}/simple/tinyapp/", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert response.status_code == 200 and "tinyapp-1.0" in response.text
        assert (cache / "files").is_dir() and not (tmp_path / "ignored").exists()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/simple/" in output
    ini = output[output.index("[global]") :]
    parser = configparser.ConfigParser()
    parser.read_string("\n".join(ini.splitlines()[:3]))
    assert parser["global"]["index-url"] == f"http://127.0.0.1:{port}/simple/"
    assert parser["global"]["trusted-host"] == "127.0.0.1"


def test_routes_says_what_the_policy_refuses(tmp_path: Path) -> None:
    config = tmp_path / "policy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "upstreams": {"pypi": {"mirrors": ["https://m.test/simple/"]}},
                "policy": {"deny": ["evil-*"]},
            }
        )
    )
    result = subprocess.run(
        [*COMMAND, "routes", "evil-pkg", "numpy", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = result.stdout.splitlines()
    assert (
        lines[2]
        == "    but evil-pkg is refused by policy: deny ('evil-*'): 404, never asked upstream"
    )
    assert lines[3].startswith("  numpy: routes[0]") and len(lines) == 4


def test_routes_tells_which_upstreams_a_project_resolves_to_and_why() -> None:
    result = subprocess.run(
        [*COMMAND, "routes", "torch", "Numpy", "bad name!", "--index", "cu118"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "index 'cu118': torch: not fetched yet"  # no cache here
    assert lines[1].startswith("  torch: routes[0] (matches 'torch'): pytorch-cu118;")
    assert lines[2].startswith("  numpy: routes[1] (matches '*'): pypi then pytorch-cu118;")
    assert "not a valid project name" in lines[3]
    wrong = subprocess.run(
        [*COMMAND, "routes", "torch", "--index", "cu999"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert wrong.returncode == 2 and "no index named 'cu999'" in wrong.stderr
