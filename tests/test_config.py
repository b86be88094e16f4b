"""The YAML configuration: the bundled default, and errors that name the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config import ConfigError, Route, default_config_path, load_config, parse_config
from proxy.model import NormalizedName
from proxy.routing import upstreams_for

MINIMAL: dict[str, Any] = {"upstreams": {"pypi": {"mirrors": ["https://m.test/simple"]}}}


def test_bundled_default_config() -> None:
    config = load_config(default_config_path())
    assert (config.host, config.port, config.page_ttl) == ("0.0.0.0", 3141, 600.0)
    assert [u.name for u in config.upstreams] == ["pypi", "pytorch"]
    assert len(config.upstream("pypi").mirrors) == 2
    assert config.upstream("pytorch").mirrors[0].endswith("/whl/cu121/")
    for name in ["torch", "torchvision", "torchaudio", "triton", "pytorch-triton"]:
        assert upstreams_for(config.routes, NormalizedName(name)) == ("pytorch",)
    assert upstreams_for(config.routes, NormalizedName("numpy")) == ("pypi", "pytorch")


def test_minimal_config_routes_everything_to_every_upstream() -> None:
    config = parse_config(MINIMAL)
    assert config.upstream("pypi").mirrors == ("https://m.test/simple/",)
    assert config.routes == (Route(patterns=("*",), upstreams=("pypi",)),)


def test_durations_paths_and_globs() -> None:
    config = parse_config(
        {
            **MINIMAL,
            "cache": {"dir": "~/x", "page_ttl": "2h"},
            "timeouts": {"connect": 3, "first_byte": "20s", "stall": "1.5m"},
            "routes": [{"projects": ["NVIDIA_*", "Torch"], "upstreams": ["pypi"]}],
        }
    )
    assert config.page_ttl == 7200 and config.connect_timeout == 3
    assert config.first_byte_timeout == 20 and config.stall_timeout == 90
    assert config.cache_dir == Path.home() / "x"
    assert config.routes[0].patterns == ("nvidia-*", "torch")
    assert upstreams_for(config.routes, NormalizedName("nvidia-cudnn-cu12")) == ("pypi",)
    assert upstreams_for(config.routes, NormalizedName("numpy")) == ()


def _with(**extra: Any) -> dict[str, Any]:
    return {**MINIMAL, **extra}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "the top level: expected a mapping"),
        ({}, "upstreams: missing"),
        ({"upstreams": {}}, "upstreams: empty"),
        (_with(listen={"hots": "x"}), "listen.hots: unknown key"),
        (_with(colour="blue"), "colour: unknown key"),
        (_with(listen={"port": 70000}), "listen.port: expected a port number"),
        (_with(listen={"port": "80"}), "listen.port: expected a port number"),
        (_with(cache={"page_ttl": "ten minutes"}), "cache.page_ttl: expected a duration"),
        (_with(timeouts={"stall": 0}), "timeouts.stall: expected a duration"),
        (_with(timeouts={"read": 5}), "timeouts.read: unknown key"),
        ({"upstreams": {"pypi": {"mirrors": []}}}, "upstreams.pypi.mirrors: needs at least one"),
        ({"upstreams": {"pypi": {"mirror": ["x"]}}}, "upstreams.pypi.mirror: unknown key"),
        (
            {"upstreams": {"pypi": {"mirrors": "https://x/"}}},
            "upstreams.pypi.mirrors: expected a list",
        ),
        (
            {"upstreams": {"pypi": {"mirrors": ["https://ok.test/", "ftp://x.test/"]}}},
            "upstreams.pypi.mirrors[1]: not an http(s) URL: 'ftp://x.test/'",
        ),
        ({"upstreams": {"pypi": {"mirrors": ["https:///simple"]}}}, "mirrors[0]: not an http(s)"),
        (
            _with(routes=[{"projects": ["torch"], "upstreams": ["pytroch"]}]),
            "routes[0].upstreams[0]: unknown upstream 'pytroch' (known: pypi)",
        ),
        (_with(routes=[{"projects": ["torch"]}]), "routes[0].upstreams: missing"),
        (
            _with(routes=[{"projects": ["bad name!"], "upstreams": ["pypi"]}]),
            "routes[0].projects[0]",
        ),
        (_with(routes=[]), "routes: empty"),
    ],
)
def test_errors_name_the_key_path(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert message in str(raised.value)


def test_unreadable_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstreams: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(MINIMAL))
    assert load_config(good).upstreams[0].name == "pypi"
