"""Conda channels' pure parts: the config, what a path names, the records read and the one
rewrite made to index files."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tomllib
import yaml

from proxy.core.client_setup import conda_snippets, conda_url, condarc
from proxy.core.conda_channels import CondaPath, Kind, NotConda, conda_path
from proxy.core.conda_environment import (
    BadEnvironment,
    check_subdirs,
    environment,
    virtual_packages,
)
from proxy.core.config import CondaChannel, ConfigError, default_config_path
from proxy.core.config_yaml import load_config, parse_config
from proxy.core.repodata import PackageRecord, record_of, relocated

FORGE = CondaChannel("conda-forge", "anaconda", "cloud/conda-forge")
MAIN = CondaChannel("pkgs/main", "anaconda", "pkgs/main")
LABEL = CondaChannel("conda-forge/label/dev", "org", "conda-forge/label/dev")
SHA = "ab" * 32


def _config(conda: Any) -> Any:
    return parse_config({"upstreams": {"pypi": {"mirrors": ["http://x/simple/"]}}, "conda": conda})


def test_channels_come_from_a_group_and_a_path_below_its_mirrors() -> None:
    config = _config(
        {
            "upstreams": {"anaconda": {"mirrors": ["https://m.example/anaconda"]}},
            "channels": {"pkgs/main": "anaconda/pkgs/main", "conda-forge": "anaconda"},
        }
    )
    assert config.conda_channels == (
        CondaChannel("pkgs/main", "anaconda", "pkgs/main"),
        CondaChannel("conda-forge", "anaconda", ""),
    )
    mirror = config.conda_upstreams[0].mirrors[0]
    assert mirror == "https://m.example/anaconda/"
    assert config.conda_channels[0].url_on(mirror) == "https://m.example/anaconda/pkgs/main/"
    assert config.conda_channels[1].url_on(mirror) == mirror


@pytest.mark.parametrize(
    ("conda", "message"),
    [
        ({"channels": {"x": "nowhere/x"}}, "conda.channels.x: unknown conda upstream 'nowhere'"),
        ({"upstreams": {"pypi": {"mirrors": ["http://y/"]}}}, "conda.upstreams.pypi: the name"),
        ({"upstreams": {"a": {"mirrors": []}}}, "conda.upstreams.a.mirrors: needs at least"),
        ({"upstreams": {"a": {"mirrors": ["ftp://y/"]}}}, "conda.upstreams.a.mirrors[0]: not an"),
        (
            {"upstreams": {"a": {"mirrors": ["http://y/"]}}, "channels": {"../x": "a/x"}},
            "conda.channels.../x: not a channel name",
        ),
        (
            {"upstreams": {"a": {"mirrors": ["http://y/"]}}, "channels": {"x": "a/../x"}},
            "conda.channels.x: expected <conda upstream>/<path>",
        ),
        ({"mirrors": []}, "conda.mirrors: unknown key"),
    ],
)
def test_bad_conda_config_names_the_key(conda: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        _config(conda)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "conda-forge/noarch/repodata.json",
            CondaPath(FORGE, "noarch", "repodata.json", Kind.INDEX),
        ),
        (
            "pkgs/main/linux-64/current_repodata.json",
            CondaPath(MAIN, "linux-64", "current_repodata.json", Kind.INDEX),
        ),
        (
            f"conda-forge/osx-arm64/shards/{SHA}.msgpack.zst",
            CondaPath(FORGE, "osx-arm64", f"shards/{SHA}.msgpack.zst", Kind.SHARD),
        ),
        (
            "conda-forge/label/dev/win-64/x-1.0-h1_0.tar.bz2",
            CondaPath(LABEL, "win-64", "x-1.0-h1_0.tar.bz2", Kind.PACKAGE),
        ),
    ],
)
def test_a_path_names_a_file_of_the_longest_matching_channel(
    path: str, expected: CondaPath
) -> None:
    assert conda_path([FORGE, MAIN, LABEL], path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "nope/noarch/repodata.json",
        "conda-forge/linux/repodata.json",
        "conda-forge/noarch/repodata.json.gz",
        "conda-forge/noarch/../x.conda",
        "conda-forge/noarch/shards/abc.msgpack.zst",
        "conda-forge/noarch/.hidden.conda",
        "conda-forge/noarch/a/b.conda",
        "conda-forge/noarch/",
    ],
)
def test_anything_else_names_nothing(path: str) -> None:
    with pytest.raises(NotConda):
        conda_path([FORGE, MAIN, LABEL], path)


def test_records_take_hex_or_bytes_hashes_and_skip_what_names_no_package() -> None:
    md5 = "cd" * 16
    assert record_of("a-1-0.conda", {"sha256": SHA.upper(), "size": 3}) == PackageRecord(
        "a-1-0.conda", SHA, None, 3
    )
    assert record_of("a-1-0.tar.bz2", {"md5": bytes.fromhex(md5), "size": True}) == PackageRecord(
        "a-1-0.tar.bz2", None, md5, None
    )
    assert record_of("a-1-0.conda", {"sha256": "zz", "md5": "12"}) is None
    assert record_of("../a.conda", {"sha256": SHA}) is None
    assert record_of(7, {"sha256": SHA}) is None


DOCUMENT = json.dumps(
    {
        "info": {"subdir": "linux-64", "base_url": "https://cdn.example/x/linux-64/"},
        "note": 'a value that says "base_url": "https://elsewhere/"',
        "shards_base_url": "https:\\/\\/cdn.example\\/shards\\/",  # backslashes in it
        "other": {"base_url": None},
        "packages": {"a-1-0.tar.bz2": {"sha256": SHA}},
    },
    indent=1,
).encode()


def test_relocated_makes_locations_relative_and_keeps_every_other_byte() -> None:
    out = b"".join(relocated([DOCUMENT]))
    data = json.loads(out)
    assert data["info"]["base_url"] == "./"
    assert data["shards_base_url"] == "./shards/"
    assert data["note"] == 'a value that says "base_url": "https://elsewhere/"'
    assert data["other"] == {"base_url": None}
    original = json.loads(DOCUMENT)
    original["info"]["base_url"], original["shards_base_url"] = "./", "./shards/"
    assert data == original
    expected = DOCUMENT.replace(b'"https://cdn.example/x/linux-64/"', b'"./"')
    escaped = json.dumps("https:\\/\\/cdn.example\\/shards\\/").encode()
    assert out == expected.replace(escaped, b'"./shards/"')


def test_relocated_is_the_same_whatever_the_chunks() -> None:
    whole = b"".join(relocated([DOCUMENT]))
    for size in (1, 2, 3, 7, 16, 31, 64):
        chunks = [DOCUMENT[i : i + size] for i in range(0, len(DOCUMENT), size)]
        assert b"".join(relocated(chunks)) == whole, size


def test_the_bundled_config_serves_tunas_anaconda_mirror_in_its_layout() -> None:
    config = load_config(default_config_path())
    channels = {c.name: c for c in config.conda_channels}
    tuna = "https://mirrors.tuna.tsinghua.edu.cn/anaconda/"
    assert config.upstream("anaconda").mirrors[0] == tuna
    layout = {"pkgs/main": "pkgs/main/", "pkgs/free": "pkgs/free/",
              "conda-forge": "cloud/conda-forge/", "pytorch": "cloud/pytorch/"}  # fmt: skip
    for name, below in layout.items():
        assert channels[name].url_on(tuna) == tuna + below
    nvidia = channels["nvidia"]
    assert not any("tuna" in m for m in config.upstream(nvidia.upstream).mirrors)


def test_condarc_sends_defaults_and_every_channel_name_to_the_proxy() -> None:
    text = condarc(
        "http://10.0.0.5:3141/conda", ["pkgs/main", "pkgs/free", "conda-forge", "pkgs/r"]
    )
    assert yaml.safe_load(text) == {
        "channels": ["defaults"],
        "show_channel_urls": True,
        "channel_alias": "http://10.0.0.5:3141/conda",
        "default_channels": [
            "http://10.0.0.5:3141/conda/pkgs/main",
            "http://10.0.0.5:3141/conda/pkgs/r",
        ],
        "custom_channels": {"conda-forge": "http://10.0.0.5:3141/conda"},
    }
    assert [s.key for s in conda_snippets("http://h/conda", [])] == []
    pixi = next(s for s in conda_snippets("http://h/conda", ["conda-forge"]) if s.key == "pixi")
    assert tomllib.loads(pixi.text)["mirrors"]["https://conda.anaconda.org/"] == ["http://h/conda/"]


SERVED = ["pkgs/main", "pkgs/r", "pkgs/msys2", "conda-forge", "pytorch"]


def test_an_environment_s_channels_are_those_the_proxy_serves() -> None:
    data = {
        "channels": [
            "https://conda.anaconda.org/pytorch",
            "http://10.0.0.5:3141/conda/conda-forge/",
            "defaults",
            "pytorch",
        ],
        "dependencies": ["pytorch=2.5", "numpy >=1.26", {"pip": ["requests"]}],
    }
    env = environment(data, SERVED, ["linux-64"])
    assert env.channels == ("pytorch", "conda-forge", "pkgs/main", "pkgs/r")
    assert env.specs == ("pytorch=2.5", "numpy >=1.26")
    assert env.skipped == ("pip: (not conda's)",)
    windows = environment({"dependencies": ["x"]}, SERVED, ["linux-64", "win-64"])
    assert windows.channels == ("pkgs/main", "pkgs/r", "pkgs/msys2")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a mapping"),
        ({"channels": "conda-forge", "dependencies": ["x"]}, "channels: expected a list"),
        ({"channels": ["bioconda"], "dependencies": ["x"]}, "channels: 'bioconda' is not served"),
        ({"channels": ["conda-forge"]}, "dependencies: expected a list"),
        ({"dependencies": [{"pip": ["x"]}]}, "dependencies: no conda package specs"),
    ],
)
def test_an_environment_that_cannot_be_prefetched_says_why(data: Any, message: str) -> None:
    with pytest.raises(BadEnvironment, match=message):
        environment(data, SERVED, ["linux-64"])


def test_subdirs_and_their_virtual_packages() -> None:
    check_subdirs(["linux-64", "osx-arm64", "win-64"])
    for bad in ("noarch", "linux", "../x"):
        with pytest.raises(BadEnvironment, match="--subdir"):
            check_subdirs([bad])
    assert ("__glibc", "2.28") in virtual_packages("linux-aarch64")
    assert [name for name, _ in virtual_packages("osx-arm64")] == ["__unix", "__osx"]
    assert ("__win", "0") in virtual_packages("win-64")


def test_without_conda_s_defaults_served_the_condarc_names_the_channels() -> None:
    assert yaml.safe_load(condarc("http://h/conda", ["conda-forge", "nvidia"]))["channels"] == [
        "conda-forge",
        "nvidia",
    ]


@pytest.mark.parametrize(
    ("index_url", "expected"),
    [
        ("http://10.0.0.5:3141/simple/", "http://10.0.0.5:3141/conda"),
        ("http://10.0.0.5:3141/cu121/simple/", "http://10.0.0.5:3141/conda"),
        ("https://lab.example/pypi/simple/", "https://lab.example/pypi/conda"),
        ("https://lab.example/pypi/cpu/simple", "https://lab.example/pypi/conda"),
    ],
)
def test_the_conda_channels_are_beside_the_index_url(index_url: str, expected: str) -> None:
    assert conda_url(index_url, ["cu121", "cpu"]) == expected
