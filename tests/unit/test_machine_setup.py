"""The setup script's parts, called as functions: which profile it picks and why, how it edits
a pip config and a uv.toml (every other line as it was), backups and undo, where the files
are on each system; and how the proxy writes the script out for a request's host."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from support.gpu import fake_nvidia_smi

from proxy.client import machine_setup as setup
from proxy.client.machine_setup import Profile
from proxy.core.client_setup import condarc
from proxy.core.config_yaml import parse_config
from proxy.core.pytorch_builds import build_cuda
from proxy.core.setup_script import ScriptProfile, setup_script, valid_host

URL = "http://10.0.0.5:3141/cu124/simple/"


def _profile(name: str, cuda: list[int] | None = None, *, default: bool = False) -> Profile:
    return {"name": name, "cuda": cuda, "torch": None, "default": default}


PROFILES = [
    _profile("cu121", [12, 1], default=True),
    _profile("cpu"),
    _profile("cu118", [11, 8]),
    _profile("cu124", [12, 4]),
    _profile("cu130", [13, 0]),
    _profile("rocm6.4"),
]


def _chosen(detected: tuple[tuple[int, int] | None, str], **given: str) -> str:
    profile, _ = setup.choose(PROFILES, given.get("asked"), given.get("pinned"), detected)
    return profile["name"]


def test_the_newest_cuda_build_the_driver_runs_else_cpu() -> None:
    assert _chosen(((12, 4), "")) == "cu124"
    assert _chosen(((12, 9), "")) == "cu124"  # 12.9: no cu126 here, cu130 needs a newer driver
    assert _chosen(((13, 2), "")) == "cu130"
    assert _chosen(((11, 8), "")) == "cu118"
    assert _chosen((None, "no nvidia-smi")) == "cpu"
    profile, reasons = setup.choose(PROFILES, None, None, ((11, 4), "Driver: CUDA 11.4."))
    assert profile["name"] == "cpu"
    assert reasons[0] == "Driver: CUDA 11.4. Every CUDA build here needs more (the oldest: 11.8)."
    assert "--profile NAME (cu121, cu118, cu124, cu130, rocm6.4)" in reasons[1]
    without_cpu = [p for p in PROFILES if p["name"] != "cpu"]
    assert setup.choose(without_cpu, None, None, (None, ""))[0]["name"] == "cu121"  # the default


def test_asked_or_pinned_profiles_skip_detection_and_unknown_names_are_refused() -> None:
    assert _chosen(((12, 4), ""), asked="rocm6.4") == "rocm6.4"
    assert _chosen(((12, 4), ""), pinned="cu118") == "cu118"
    assert _chosen(((12, 4), ""), pinned="cu118", asked="cpu") == "cpu"
    with pytest.raises(setup.SetupError, match=r"--profile cu999: no such profile .*cu121, cpu"):
        setup.choose(PROFILES, "cu999", None, ((12, 4), ""))


def test_detect_reads_the_cuda_version_nvidia_smi_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert setup.detect()[0] is None
    smi = fake_nvidia_smi(tmp_path, "12.4")
    found = "NVIDIA driver 550.54.15 supports CUDA up to 12.4 (nvidia-smi)."
    assert setup.detect() == ((12, 4), found)
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed'\nexit 9\n")
    assert setup.detect()[0] is None


def _global(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return dict(parser["global"])


def test_a_new_pip_config_says_who_wrote_it() -> None:
    text = setup.edit_pip_config(None, URL)
    assert text.startswith(setup.CREATED + "\n")
    assert _global(text) == {"index-url": URL, "trusted-host": "10.0.0.5"}
    assert "trusted-host" not in setup.edit_pip_config(None, "https://proxy.lab.test/simple/")


def test_a_pip_config_keeps_every_other_line() -> None:
    before = (
        "# my settings\n[global]\ntimeout = 30\nindex_url = https://old.test/simple/\n"
        "trusted-host = old.test\n    other.test\n\n[install]\nno-compile = true"
    )
    text = setup.edit_pip_config(before, URL)
    assert _global(text) == {
        "index-url": URL,
        "trusted-host": "old.test other.test 10.0.0.5",  # the hosts trusted before stay trusted
        "timeout": "30",
    }
    assert text.startswith("# my settings\n[global]\n")
    assert text.endswith("timeout = 30\n\n[install]\nno-compile = true\n")
    assert setup.edit_pip_config(text, URL) == text  # a second run changes nothing
    https = setup.edit_pip_config(before, "https://proxy.lab.test/simple/")
    assert "trusted-host = old.test\n    other.test\n" in https  # not ours to touch over https


def test_a_pip_config_without_a_global_section_and_with_windows_line_ends() -> None:
    text = setup.edit_pip_config("[install]\r\nno-compile = true\r\n", URL)
    assert text == (
        f"[install]\r\nno-compile = true\r\n\r\n[global]\r\nindex-url = {URL}\r\n"
        "trusted-host = 10.0.0.5\r\n"
    )


def test_a_uv_toml_gets_the_proxy_as_its_default_index_in_a_block_of_its_own() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    ours = {"name": "pypi-proxy", "url": URL, "default": True}
    assert tomllib.loads(setup.edit_uv_config(None, URL)) == {"index": [ours]}
    before = "native-tls = true\n\n[pip]\ncompile-bytecode = true\n"
    text = setup.edit_uv_config(before, URL)
    assert text.startswith(before)
    assert tomllib.loads(text) == {"native-tls": True, "pip": {"compile-bytecode": True},
                                   "index": [ours]}  # fmt: skip
    again = setup.edit_uv_config(text, "http://10.0.0.5:3141/cpu/simple/")
    assert again.count(setup.UV_BEGIN) == 1 and again.startswith(before)
    assert tomllib.loads(again)["index"] == [{**ours, "url": "http://10.0.0.5:3141/cpu/simple/"}]
    with pytest.raises(setup.SetupError, match="would not be valid TOML"):
        setup.edit_uv_config('index = [{url = "https://x.test/simple/"}]\n', URL)


def test_backups_are_made_once_and_undo_restores_them_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "pip" / "pip.conf"
    path.parent.mkdir()
    mine = b"[global]\r\ntimeout = 30\r\n"
    path.write_bytes(mine)
    assert "replaces is kept as" in setup.apply(str(path), "one\n", dry_run=False)
    assert path.read_text() == "one\n"
    setup.apply(str(path), "two\n", dry_run=False)  # a second run keeps the first backup
    assert Path(f"{path}{setup.BACKUP}").read_bytes() == mine
    assert "restored" in setup.undo(str(path), dry_run=False)
    assert path.read_bytes() == mine and not Path(f"{path}{setup.BACKUP}").exists()
    assert setup.undo(str(path), dry_run=False).endswith("nothing to undo")


def test_undo_removes_a_file_setup_created_and_dry_runs_touch_nothing(tmp_path: Path) -> None:
    path = tmp_path / "uv" / "uv.toml"
    text = setup.edit_uv_config(None, URL)
    assert "would write" in setup.apply(str(path), text, dry_run=True)
    assert not path.parent.exists()
    setup.apply(str(path), text, dry_run=False)
    assert setup.apply(str(path), text, dry_run=False).endswith("already set")
    setup.apply(str(path), setup.edit_uv_config(text, URL.replace("cu124", "cpu")), dry_run=False)
    assert not Path(f"{path}{setup.BACKUP}").exists()  # nothing of the user's to keep
    assert "would remove" in setup.undo(str(path), dry_run=True) and path.exists()
    assert "removed" in setup.undo(str(path), dry_run=False) and not path.exists()


def test_where_pip_and_uv_keep_a_user_s_settings(tmp_path: Path) -> None:
    appdata = str(tmp_path / "Roaming")
    assert setup.config_files({"APPDATA": appdata}, True, "win32") == [
        f"{appdata}/pip/pip.ini", f"{appdata}/uv/uv.toml"]  # fmt: skip
    with pytest.raises(setup.SetupError, match="APPDATA is not set"):
        setup.config_files({}, True, "win32")
    home = str(tmp_path)
    assert setup.config_files({"HOME": home}, False, "linux") == [
        f"{home}/.config/pip/pip.conf", f"{home}/.config/uv/uv.toml"]  # fmt: skip
    xdg = setup.config_files({"HOME": home, "XDG_CONFIG_HOME": "/x"}, False, "linux")
    assert xdg == [f"{home}/.config/pip/pip.conf", "/x/uv/uv.toml"]
    mac = tmp_path / "Library" / "Application Support" / "pip"
    mac.mkdir(parents=True)  # pip on macOS reads this folder instead, once it exists
    assert setup.config_files({"HOME": home}, False, "darwin")[0] == f"{mac}/pip.conf"


@pytest.mark.parametrize(
    ("host", "valid"),
    [("10.0.0.5:3141", True), ("proxy.lab.test", True), ("proxy.lab.test.:80", True),
     ("[::1]:3141", True), ("[fe80::1]", True), ("localhost", True),
     ("", False), ("a b", False), ("x'y", False), ("x\"y", False), ("x:0", False),
     ("x:65536", False), ("[::g]", False), ("::1", False), ("-a.test", False),
     ("a.test/evil", False), ("a.test\nimport os", False), ("a..test", False)],
)  # fmt: skip
def test_only_a_host_name_or_address_with_an_optional_port_is_a_host(
    host: str, valid: bool
) -> None:
    assert valid_host(host) is valid


def test_the_served_script_is_the_same_program_with_the_request_s_host_written_in() -> None:
    from proxy.server.status_views import _SETUP_TEMPLATE

    profiles = [ScriptProfile("cu121", (12, 1), "torch 2.5.1 (CUDA 12.1)", True),
                ScriptProfile("cpu", None, None, False)]  # fmt: skip
    script = setup_script(_SETUP_TEMPLATE, "10.0.0.5:3141", profiles, "cpu", ["conda-forge"])
    namespace: dict[str, object] = {"__name__": "served"}
    exec(compile(script, "setup.py", "exec"), namespace)
    assert namespace["SERVED"] == {
        "base": "http://10.0.0.5:3141",
        "profiles": [
            {"name": "cu121", "cuda": [12, 1], "torch": "torch 2.5.1 (CUDA 12.1)", "default": True},
            {"name": "cpu", "cuda": None, "torch": None, "default": False},
        ],
        "pinned": "cpu",
        "condarc": condarc("http://10.0.0.5:3141/conda", ["conda-forge"]),
    }
    assert "custom_channels:\n  conda-forge: http://10.0.0.5:3141/conda\n" in str(
        namespace["SERVED"]["condarc"]
    )
    assert _without_data(script) == _without_data(_SETUP_TEMPLATE)
    with pytest.raises(ValueError, match="not a host"):
        setup_script(_SETUP_TEMPLATE, "x'; import os; '", profiles, None)


def _without_data(script: str) -> list[str]:
    return [line for line in script.splitlines() if not line.startswith("SERVED: Served = ")]


def test_the_cuda_of_an_index_from_its_name_or_its_pytorch_mirror() -> None:
    config = parse_config(
        {
            "upstreams": {"torch": {"mirrors": ["https://t.test/whl/cu126/"]},
                          "pypi": {"mirrors": ["https://m.test/simple/"]}},
            "indexes": {
                "gpu": {"routes": [{"projects": ["torch"], "upstreams": ["torch"]},
                                   {"projects": ["*"], "upstreams": ["pypi"]}]},
                "cu118": {"routes": [{"projects": ["*"], "upstreams": ["pypi"]}]},
                "plain": {"routes": [{"projects": ["*"], "upstreams": ["pypi"]}]},
            },
        }
    )  # fmt: skip
    cuda = {i.name: build_cuda(i, lambda g: config.upstream(g).mirrors) for i in config.indexes}
    assert cuda == {"gpu": (12, 6), "cu118": (11, 8), "plain": None}
