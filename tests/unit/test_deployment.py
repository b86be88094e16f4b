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
from proxy.core.config_yaml import parse_config


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


def _haproxy_lines(text: str) -> list[str]:
    """A HAProxy config's lines but its comments and `server` lines (where it points)."""
    lines = [ln.split("#")[0].rstrip() for ln in text.splitlines()]
    return [ln for ln in lines if ln and not ln.lstrip().startswith("server ")]


def test_the_ha_compose_file_wires_haproxy_replicas_and_the_bucket() -> None:
    compose = yaml.safe_load((ROOT / "compose.ha.yaml").read_text())
    services = compose["services"]
    replicas = [name for name in services if name.startswith("replica")]
    assert len(replicas) == 2
    haproxy = (ROOT / "deploy" / "haproxy.cfg").read_text()
    readme = (ROOT / "README.md").read_text().split("```haproxy\n", 1)[1].split("```", 1)[0]
    assert _haproxy_lines(haproxy) == _haproxy_lines(readme)  # the README's, pointed here
    assert [f"server {r} {r}:3141" for r in replicas] == [
        ln.strip() for ln in haproxy.splitlines() if ln.strip().startswith("server ")]  # fmt: skip
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in services["haproxy"][
        "volumes"]  # fmt: skip
    config = parse_config(yaml.safe_load((ROOT / "deploy" / "replica.yaml").read_text()))
    assert config.store is not None and config.store.endpoint == "http://seaweedfs:8333"
    assert f"-bucket={config.store.bucket}" in services["seaweedfs"]["command"]
    volume = json.loads(dockerfile_instruction("VOLUME"))[0]
    for name in replicas:
        service = services[name]
        assert "./deploy/replica.yaml:/etc/pypi-proxy.yaml:ro" in service["volumes"]
        assert any(v.endswith(f":{volume}") for v in service["volumes"])
        assert parser().parse_args(["serve", *service["command"]]).config is not None
        assert duration(service["stop_grace_period"], "") > config.drain_timeout


def test_the_kubernetes_example_probes_health_and_gives_the_drain_its_time() -> None:
    documents = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/pypi-proxy.yaml").read_text()))
    config_map, deployment, service = documents
    config = parse_config(yaml.safe_load(config_map["data"]["pypi-proxy.yaml"]))
    assert config.store is not None
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/-/health", "port": "http"}
    assert pod["terminationGracePeriodSeconds"] > config.drain_timeout
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["hot-tier"] == str(config.cache_dir)
    args = parser().parse_args(["serve", *container["args"]])
    assert str(args.config).startswith(mounts["config"])
    assert (
        container["ports"][0]["containerPort"] == config.port == service["spec"]["ports"][0]["port"]
    )
