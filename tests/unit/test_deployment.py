"""The deployment files agree with each other and with the command line: the Dockerfile,
compose.yaml, and the systemd unit in the README."""

from __future__ import annotations

import configparser
import json
import shlex

import yaml
from support.repo import ROOT, dockerfile_instruction

from proxy.cli import parser
from proxy.core.config import Config
from proxy.core.config_values import duration


def test_compose_uses_the_image_port_and_volume() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["pypi-proxy"]
    volume = json.loads(dockerfile_instruction("VOLUME"))[0]
    assert service["build"] == "."
    assert (
        f"{dockerfile_instruction('EXPOSE')}:{dockerfile_instruction('EXPOSE')}" in service["ports"]
    )
    named = [v.split(":") for v in service["volumes"] if not v.lstrip().startswith("#")]
    assert [name for name, path in named if path == volume] == ["pypi-proxy-cache"]
    assert "pypi-proxy-cache" in compose["volumes"]
    assert dockerfile_instruction("USER") != "0" and "root" not in dockerfile_instruction("USER")
    entrypoint = json.loads(dockerfile_instruction("ENTRYPOINT"))
    args = parser().parse_args(entrypoint[1:])
    assert args.command == "serve" and str(args.cache_dir) == volume


def test_the_systemd_unit_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    unit_text = readme.split("## As a systemd service", 1)[1].split("```ini\n", 1)[1]
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(unit_text.split("```", 1)[0])
    service = unit["Service"]
    program, *args = shlex.split(service["ExecStart"])
    assert program.endswith("/bin/pypi-proxy")
    parsed = parser().parse_args(args)
    assert parsed.command == "serve"
    assert service["CacheDirectory"] == "pypi-proxy"
    assert str(parsed.cache_dir) == "/var/cache/pypi-proxy"  # where CacheDirectory puts it
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_stop_timeouts_leave_room_for_the_drain() -> None:
    drain = Config(upstreams=(), indexes=()).drain_timeout
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert duration(compose["services"]["pypi-proxy"]["stop_grace_period"], "") > drain
    readme = (ROOT / "README.md").read_text()
    unit = readme.split("## As a systemd service", 1)[1].split("```", 2)[1]
    stop = next(ln for ln in unit.splitlines() if ln.startswith("TimeoutStopSec="))
    assert int(stop.removeprefix("TimeoutStopSec=")) > drain
