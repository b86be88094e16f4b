"""The YAML configuration: the bundled default, and errors that name the key path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.core.config import ConfigError, Index, Route, default_config_path
from proxy.core.config_yaml import load_config, parse_config
from proxy.core.model import FileLink, NormalizedName, ProjectPage
from proxy.core.pytorch_builds import newest_torch, offer_of
from proxy.core.routing import route_for

MINIMAL: dict[str, Any] = {"upstreams": {"pypi": {"mirrors": ["https://m.test/simple"]}}}
ANY = [{"projects": ["*"], "upstreams": ["pypi"]}]


def upstreams_for(routes: tuple[Route, ...], name: str) -> tuple[str, ...]:
    route = route_for(routes, NormalizedName(name))
    return route.upstreams if route else ()


def test_bundled_default_config() -> None:
    config = load_config(default_config_path())
    assert (config.host, config.port, config.page_ttl) == ("0.0.0.0", 3141, 600.0)
    assert len(config.upstream("pypi").mirrors) == 2
    names = [i.name for i in config.indexes]
    assert names[0] == "cu121"  # the default, first: also at /simple/
    assert {"cpu", "cu118", "cu121", "cu124", "cu126", "cu128", "cu130"} <= set(names)
    for index in config.indexes:
        group = f"pytorch-{index.name}"
        assert config.upstream(group).mirrors == (
            f"https://download.pytorch.org/whl/{index.name}/",
        )
        for name in ["torch", "torchvision", "torchaudio", "triton", "pytorch-triton"]:
            assert upstreams_for(index.routes, name) == (group,)
        assert upstreams_for(index.routes, "numpy") == ("pypi", group)


def _builds(**pytorch: object) -> dict[str, object]:
    return {"upstreams": {"pypi": {"mirrors": ["https://m.test/simple/"]}}, "pytorch": pytorch}


def test_the_pytorch_builds_are_written_out_as_groups_and_indexes() -> None:
    config = parse_config(_builds(builds=["cpu", "cu126", "rocm6.4"], default="cu126"))
    assert [i.name for i in config.indexes] == ["cu126", "cpu", "rocm6.4"]
    assert [u.name for u in config.upstreams] == ["pypi", "pytorch-cpu", "pytorch-cu126",
                                                  "pytorch-rocm6.4"]  # fmt: skip
    assert config.upstream("pytorch-rocm6.4").mirrors == (
        "https://download.pytorch.org/whl/rocm6.4/",
    )
    rocm = config.index("rocm6.4").routes
    assert upstreams_for(rocm, "torchaudio") == ("pytorch-rocm6.4",)
    assert upstreams_for(rocm, "pytorch-triton-rocm") == ("pytorch-rocm6.4",)
    assert upstreams_for(rocm, "requests") == ("pypi", "pytorch-rocm6.4")


def test_without_a_default_the_first_build_is_served_at_simple() -> None:
    config = parse_config(_builds(builds=["cu128", "cpu"], url="https://mirror.test/whl"))
    assert config.indexes[0].name == "cu128"
    assert config.upstream("pytorch-cpu").mirrors == ("https://mirror.test/whl/cpu/",)


def test_hand_written_groups_and_indexes_stay_beside_the_builds() -> None:
    data = _builds(builds=["cu121", "cu128"], default="cu121")
    national = ["https://national.test/whl/cu121/", "https://download.pytorch.org/whl/cu121/"]
    data["upstreams"] = {"pypi": {"mirrors": ["https://m.test/simple/"]},
                         "pytorch-cu121": {"mirrors": national}}  # fmt: skip
    data["indexes"] = {"lab": {"routes": [{"projects": ["*"], "upstreams": ["pypi"]}]}}
    config = parse_config(data)
    assert [i.name for i in config.indexes] == ["cu121", "cu128", "lab"]
    assert config.upstream("pytorch-cu121").mirrors == tuple(national)  # kept as written
    # A hand-written group of a build is that build's, not one of the mirrors for the rest.
    assert upstreams_for(config.index("cu128").routes, "numpy") == ("pypi", "pytorch-cu128")


def test_gpu_extensions_come_from_their_index_s_folder_for_each_build() -> None:
    extensions = {"mirrors": ["https://national.test/astral", "https://gpu.test/simple/"],
                  "projects": ["flash-attn", "vllm*"], "builds": ["cu128", "cpu"]}  # fmt: skip
    data = _builds(builds=["cu121", "cu128", "cpu"], extensions=extensions)
    data["upstreams"] = {
        "pypi": {"mirrors": ["https://m.test/simple/"]},
        "extensions-cpu": {"mirrors": ["https://lab.test/cpu/"]},
    }  # kept instead
    config = parse_config(data)
    assert config.upstream("extensions-cu128").mirrors == (
        "https://national.test/astral/cu128/", "https://gpu.test/simple/cu128/")  # fmt: skip
    assert config.upstream("extensions-cpu").mirrors == ("https://lab.test/cpu/",)
    cu128, cu121 = config.index("cu128").routes, config.index("cu121").routes
    assert upstreams_for(cu128, "flash-attn") == ("extensions-cu128", "pypi")  # then sdists
    assert upstreams_for(cu128, "vllm-flash-attn") == ("extensions-cu128", "pypi")
    assert upstreams_for(cu128, "torch") == ("pytorch-cu128",)  # never from the extensions
    assert upstreams_for(cu128, "numpy") == ("pypi", "pytorch-cu128")
    assert upstreams_for(config.index("cpu").routes, "numpy") == ("pypi", "pytorch-cpu")
    assert upstreams_for(cu121, "flash-attn") == ("pypi", "pytorch-cu121")  # not for this one


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ({"projects": ["x"]}, "pytorch.extensions.mirrors: missing"),
        ({"mirrors": ["https://g.test/"]}, "pytorch.extensions.projects: missing"),
        ({"mirrors": ["https://g.test/"], "projects": []}, "pytorch.extensions.projects: empty"),
        ({"mirrors": ["g.test"], "projects": ["x"]}, r"pytorch.extensions.mirrors\[0\]: not an"),
        ({"mirrors": ["https://g.test/"], "projects": ["x"], "builds": ["cu999"]},
         r"pytorch.extensions.builds\[0\]: 'cu999' is not one of pytorch.builds \(cu121\)"),
        ({"mirror": "https://g.test/"}, "pytorch.extensions.mirror: unknown key"),
    ],
)  # fmt: skip
def test_a_bad_extensions_section_names_the_key(extensions: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_builds(builds=["cu121"], extensions=extensions))


def test_the_bundled_presets_for_variants_and_gpu_extensions_parse_once_uncommented() -> None:
    text = default_config_path().read_text()
    text = re.sub(r"(?m)^(  builds: \[.*)\]$", r"\1, variant]", text)
    start = text.index("  # extensions:")
    block = text[start:].split("\n\n")[0]
    text = text.replace(block, re.sub(r"(?m)^  # ", "  ", block))
    config = parse_config(yaml.safe_load(text))
    assert config.upstream("pytorch-variant").mirrors == (
        "https://download.pytorch.org/whl/variant/",
    )
    assert upstreams_for(config.index("variant").routes, "torch") == ("pytorch-variant",)
    cu128 = config.index("cu128").routes
    assert upstreams_for(cu128, "flash-attn") == ("extensions-cu128", "pypi")
    assert upstreams_for(cu128, "deepspeed") == ("extensions-cu128", "pypi")
    assert upstreams_for(config.index("cu121").routes, "vllm") == ("pypi", "pytorch-cu121")
    assert len(config.upstream("extensions-cu130").mirrors) == 2


@pytest.mark.parametrize(
    ("pytorch", "message"),
    [
        ({}, "pytorch.builds: missing"),
        ({"builds": []}, "pytorch.builds: empty"),
        ({"builds": "cu121"}, "pytorch.builds: expected a list"),
        ({"builds": ["cu121", "cu121"]}, r"pytorch.builds\[1\]: 'cu121' is listed twice"),
        ({"builds": ["cu121"], "default": "cu999"}, "pytorch.default: 'cu999' is not one of"),
        ({"builds": ["cu121"], "mirror": "x"}, "pytorch.mirror: unknown key"),
        ({"builds": ["simple"]}, "indexes.simple: 'simple' is taken"),
        ({"builds": ["cu121"], "url": "ftp://x/"}, "pytorch.url: not an http"),
    ],
)
def test_a_bad_pytorch_section_names_the_key(pytorch: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_builds(**pytorch))


def test_top_level_routes_do_not_go_with_builds() -> None:
    data = {**_builds(builds=["cu121"]), "routes": [{"projects": ["*"], "upstreams": ["pypi"]}]}
    with pytest.raises(ConfigError, match="routes: with a pytorch section, each index has"):
        parse_config(data)


def test_two_defaults_are_refused() -> None:
    data = _builds(builds=["cu121"], default="cu121")
    data["indexes"] = {"lab": {"default": True, "routes": [{"projects": ["*"],
                                                           "upstreams": ["pypi"]}]}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"indexes\.lab\.default: 'cu121' is the default already"):
        parse_config(data)


def test_minimal_config_routes_everything_to_every_upstream() -> None:
    config = parse_config(MINIMAL)
    assert config.upstream("pypi").mirrors == ("https://m.test/simple/",)
    assert config.indexes == (Index("default", (Route(patterns=("*",), upstreams=("pypi",)),)),)


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
    routes = config.indexes[0].routes
    assert routes[0].patterns == ("nvidia-*", "torch")
    assert upstreams_for(routes, "nvidia-cudnn-cu12") == ("pypi",)
    assert upstreams_for(routes, "numpy") == ()


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
        (_with(downloads={"segments": 0}), "downloads.segments: expected a whole number"),
        (_with(downloads={"segments": 64}), "downloads.segments: at most 16, got 64"),
        (_with(downloads={"segment_above": "big"}), "downloads.segment_above: expected a size"),
        (_with(prefetch={"dependencies": "yes"}), "prefetch.dependencies: expected true or false"),
        (_with(prefetch={"concurrency": 0}), "prefetch.concurrency: expected a whole number"),
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
        (
            {"upstreams": {"p": {"mirrors": [{"url": "https://x.test/", "kind": "ftp"}]}}},
            "upstreams.p.mirrors[0].kind: expected simple, flat or local, got 'ftp'",
        ),
        (
            {"upstreams": {"p": {"mirrors": [{"kind": "flat"}]}}},
            "upstreams.p.mirrors[0].url: expected a non-empty string",
        ),
        (
            _with(routes=[{"projects": ["*"], "upstreams": ["pypi"], "strategy": "all"}]),
            "routes[0].strategy: expected one of first, union, got 'all'",
        ),
        (
            _with(indexes={"cpu": {"routes": [{"projects": ["*"], "upstreams": ["pytorch"]}]}}),
            "indexes.cpu.routes[0].upstreams[0]: unknown upstream 'pytorch' (known: pypi)",
        ),
        (_with(indexes={"cpu": {}}), "indexes.cpu.routes: missing"),
        (_with(indexes={"files": {"routes": []}}), "indexes.files: 'files' is taken"),
        (
            _with(
                indexes={
                    "a": {"default": True, "routes": ANY},
                    "b": {"default": True, "routes": ANY},
                }
            ),
            "indexes.b.default: 'a' is the default already",
        ),
        (_with(indexes={"a": {"default": "yes", "routes": ANY}}), "indexes.a.default: expected"),
        (_with(indexes={"a": {"routes": ANY}}, routes=ANY), "routes: with indexes, each index"),
    ],
)
def test_errors_name_the_key_path(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert message in str(raised.value)


def test_flat_mirrors_keep_their_url_as_given() -> None:
    listing = "https://m.test/whl/torch_stable.html"
    config = parse_config(
        {"upstreams": {"p": {"mirrors": [{"url": listing, "kind": "flat"}, "https://t.test/x"]}}}
    )
    assert config.upstreams[0].mirrors == (listing, "https://t.test/x/")
    assert config.upstreams[0].flat == {listing}


def test_indexes_with_the_default_first() -> None:
    config = parse_config(
        _with(indexes={"cpu": {"routes": ANY}, "cu121": {"default": True, "routes": ANY}})
    )
    assert [i.name for i in config.indexes] == ["cu121", "cpu"]
    assert config.index("cpu") is config.indexes[1] and config.index() is config.indexes[0]
    with pytest.raises(ConfigError, match=r"no index named 'nope' \(known: cu121, cpu\)"):
        config.index("nope")


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


def test_the_commented_mirror_presets_parse_once_uncommented() -> None:
    text = default_config_path().read_text()
    uncommented = re.sub(r"(?m)^(\s+)# (- https?://\S+)", r"\1\2", text)
    config = parse_config(yaml.safe_load(uncommented))
    mirrors = config.upstream("pypi").mirrors
    assert len(mirrors) == 8 and mirrors[0] == "http://campus-proxy.example:3141/simple/"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (123, 123), ("500MB", 500 * 10**6), ("200GB", 200 * 10**9), ("1.5GiB", 3 * 2**29),
     ("2 TB", 2 * 10**12), ("1024", 1024)],
)  # fmt: skip
def test_sizes_in_the_config(value: object, expected: int) -> None:
    config = parse_config({"upstreams": {"p": {"mirrors": ["https://m.test/"]}},
                           "cache": {"max_size": value}})  # fmt: skip
    assert config.max_size == expected


@pytest.mark.parametrize("value", ["lots", "-5GB", "5 GBs", True, 1.5])
def test_bad_sizes_name_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match=r"cache\.max_size: expected a size"):
        parse_config({"upstreams": {"p": {"mirrors": ["https://m.test/"]}},
                      "cache": {"max_size": value}})  # fmt: skip


def test_the_commented_limits_links_and_policy_parse_once_uncommented() -> None:
    text = default_config_path().read_text()
    sections = ("limits", "links", "policy")
    lines, inside = [], False
    for line in text.splitlines():
        if re.match(rf"# ({'|'.join(sections)}):", line):
            inside = True
        elif not line.startswith("#   "):
            inside = False
        lines.append(line[2:] if inside and line.startswith("# ") else line)
    config = parse_config(yaml.safe_load("\n".join(lines)))
    assert config.limits.page_links == 200_000 and config.allow_private_links is True
    assert config.index().policy.min_age == 7 * 86400
    assert config.index().policy.block_severity == "high"


def test_what_each_index_offers_of_torch_from_its_cached_pages() -> None:
    config = parse_config(_builds(builds=["cu121", "cu130", "cpu"]))
    wheels = {
        "pytorch-cu121": ["torch-2.5.1+cu121-cp311-cp311-linux_x86_64.whl",
                          "torch-2.4.1+cu121-cp311-cp311-linux_x86_64.whl",
                          "torch-2.6.0.dev20241101+cu121-cp311-cp311-linux_x86_64.whl",
                          "torchvision-0.20.1+cu121-cp311-cp311-linux_x86_64.whl"],
        "pytorch-cu130": ["torch-2.9.1+cu130-cp312-cp312-win_amd64.whl"],
    }  # fmt: skip

    def cached(group: str) -> ProjectPage | None:
        files = tuple(FileLink(f, f"https://t.test/{f}") for f in wheels.get(group, []))
        return ProjectPage(NormalizedName("torch"), files) if files else None

    offers = {i.name: offer_of(i, cached) for i in config.indexes}
    assert offers == {
        "cu121": "torch 2.5.1 (CUDA 12.1, Linux driver 525.60.13 or newer)",  # no dev build
        "cu130": "torch 2.9.1 (CUDA 13.0, Linux driver 580 or newer)",
        "cpu": "torch: not fetched yet",
    }
    rocm = newest_torch([FileLink("torch-2.9.1+rocm6.4-cp312-cp312-linux_x86_64.whl", "u")])
    assert rocm is not None and rocm.describe() == "torch 2.9.1 (rocm6.4)"
    assert (
        newest_torch([FileLink("torch-2.9.1-cp312-cp312-win_amd64.whl", "u", yanked=True)]) is None
    )


def test_the_object_store_tier() -> None:
    store = {"url": "s3://pypi-cache/lab/a/", "endpoint": "http://10.0.0.20:8333/",
             "region": "us-east-1", "credentials": "~/aws-credentials"}  # fmt: skip
    config = parse_config({**MINIMAL, "cache": {"store": store}})
    assert config.store is not None
    assert (config.store.bucket, config.store.prefix) == ("pypi-cache", "lab/a")
    assert config.store.url == "s3://pypi-cache/lab/a"
    assert config.store.location == "http://10.0.0.20:8333/pypi-cache/lab/a/"
    assert config.store.credentials == Path.home() / "aws-credentials"
    assert parse_config(MINIMAL).store is None


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ({}, "cache.store.url: expected a non-empty string"),
        ({"url": "https://s3.test/bucket"}, "cache.store.url: expected s3://BUCKET/PREFIX"),
        ({"url": "s3://No_Such"}, "cache.store.url: expected s3://BUCKET/PREFIX"),
        ({"url": "s3://bucket", "endpoint": "10.0.0.20:8333"}, "cache.store.endpoint: not an"),
        ({"url": "s3://bucket", "secret": "x"}, "cache.store.secret: unknown key"),
        ("s3://bucket", "cache.store: expected a mapping"),
    ],
)
def test_a_bad_object_store_names_the_key(store: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**MINIMAL, "cache": {"store": store}})


def test_a_hosted_group_takes_uploads_and_has_no_mirrors() -> None:
    groups = {"lab": {"kind": "hosted", "tokens_env": "TOKENS"},
              "pypi": {"mirrors": ["https://m.test/simple/"]}}  # fmt: skip
    config = parse_config({"upstreams": groups})
    lab = config.upstream("lab")
    assert lab.hosted is not None and lab.hosted.tokens_env == "TOKENS"
    assert lab.mirrors == ("hosted://lab/",)


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"kind": "hosted"}, r"upstreams\.lab: name who may upload"),
        ({"kind": "hosted", "tokens": ["t"], "mirrors": ["https://m.test/"]},
         r"upstreams\.lab\.mirrors: a hosted group has none"),
        ({"kind": "mirror", "mirrors": ["https://m.test/"]},
         r"upstreams\.lab\.kind: expected hosted"),
        ({"mirrors": ["https://m.test/"], "tokens": ["t"]}, r"upstreams\.lab: tokens are for"),
    ],
)  # fmt: skip
def test_a_bad_hosted_group_names_the_key(group: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"upstreams": {"lab": group}})
