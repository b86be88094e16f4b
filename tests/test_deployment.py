"""The deployment files agree with each other and with the command line: the Dockerfile,
compose.yaml, and the systemd unit in the README."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from support.world import World

from proxy.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instruction(name: str) -> str:
    """A Dockerfile instruction's arguments, continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    match = re.search(rf"^{name} (.+)$", text, re.MULTILINE)
    assert match, name
    return match[1].strip()


def test_compose_uses_the_image_port_and_volume() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["pypi-proxy"]
    volume = json.loads(_instruction("VOLUME"))[0]
    assert service["build"] == "."
    assert f"{_instruction('EXPOSE')}:{_instruction('EXPOSE')}" in service["ports"]
    named = [v.split(":") for v in service["volumes"] if not v.lstrip().startswith("#")]
    assert [name for name, path in named if path == volume] == ["pypi-proxy-cache"]
    assert "pypi-proxy-cache" in compose["volumes"]
    assert _instruction("USER") != "0" and "root" not in _instruction("USER")
    entrypoint = json.loads(_instruction("ENTRYPOINT"))
    args = _parser().parse_args(entrypoint[1:])
    assert args.command == "serve" and str(args.cache_dir) == volume


def test_the_healthcheck_command_follows_health(world: World, tmp_path: Path) -> None:
    """The image's HEALTHCHECK, pointed at a running proxy: passes while it serves, fails
    when it cannot write its cache."""
    command = json.loads(_instruction("HEALTHCHECK").split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    with world.proxy() as base:
        code = command[2].replace("http://127.0.0.1:3141", base)
        assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0
        tmp = world.cache_dir / "tmp"
        shutil.rmtree(tmp)
        tmp.write_text("in the way")
        failed = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        assert failed.returncode != 0 and b"503" in failed.stderr


def test_the_systemd_unit_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    unit_text = readme.split("## As a systemd service", 1)[1].split("```ini\n", 1)[1]
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(unit_text.split("```", 1)[0])
    service = unit["Service"]
    program, *args = shlex.split(service["ExecStart"])
    assert program.endswith("/bin/pypi-proxy")
    parsed = _parser().parse_args(args)
    assert parsed.command == "serve"
    assert service["CacheDirectory"] == "pypi-proxy"
    assert str(parsed.cache_dir) == "/var/cache/pypi-proxy"  # where CacheDirectory puts it
    assert unit["Install"]["WantedBy"] == "multi-user.target"
