"""The setup script, fetched from a real proxy with the one-liner `client-config` prints and run
for real in a temporary home: it detects the GPU with (a fake) `nvidia-smi`, writes the pip
config and uv.toml where pip and uv look, and then real pip and uv install the matching torch
through the proxy. `--dry-run` writes nothing, `--undo` puts back what was there."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.clients import CLIENT_TIMEOUT, installed, isolated_env
from support.gpu import fake_nvidia_smi
from support.process import proxy_process
from support.upstream import FakeUpstream
from support.wheels import make_wheel
from support.world import World
from uv import find_uv_bin

from proxy.core.client_setup import setup_commands

BUILDS = ("cu121", "cpu", "cu124")


@dataclass
class Lab:
    base: str  # the proxy
    home: Path  # a user's home on a machine of the lab
    bin: Path  # a folder on its PATH, where `nvidia-smi` goes if it has a GPU

    def run_setup(self, *args: str, path: str = "/simple/", windows: bool = False) -> str:
        """The one-liner `client-config` prints for `path`, run as typed (with this Python);
        on a "Windows" machine, `os.name` is "nt" and APPDATA is set."""
        [command] = [s.text for s in setup_commands(self.base + path) if s.key == "setup"]
        python, flag, code = shlex.split(command)
        assert (python, flag) == ("python3", "-c")
        if windows:  # once the modules that look at os.name on import have
            code = code.replace("exec(", "import os, shutil; os.name = 'nt'; exec(")
        env = {**self.env(), "APPDATA": str(self.appdata)} if windows else self.env()
        done = subprocess.run([sys.executable, flag, code, *args], env=env, cwd=self.home,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def env(self) -> dict[str, str]:
        """The clients' environment with nothing that overrides where they find their files."""
        overrides = ("PIP_CONFIG_FILE", "UV_NO_CONFIG", "XDG_CONFIG_HOME")
        env = {k: v for k, v in isolated_env().items() if k not in overrides}
        return {**env, "HOME": str(self.home), "PATH": f"{self.bin}{os.pathsep}/usr/bin:/bin"}

    @property
    def appdata(self) -> Path:
        return self.home / "AppData" / "Roaming"

    @property
    def pip_conf(self) -> Path:
        return self.home / ".config" / "pip" / "pip.conf"

    @property
    def uv_toml(self) -> Path:
        return self.home / ".config" / "uv" / "uv.toml"

    def files(self) -> set[str]:
        return {str(p.relative_to(self.home)) for p in self.home.rglob("*") if p.is_file()}


@pytest.fixture
def lab(world: World, tmp_path: Path) -> Iterator[Lab]:
    """A proxy with three PyTorch builds, each from a PyTorch-like upstream of its own that
    carries torch 2.6.0 built for it (cu121's also has the world's torch 2.3.1)."""
    upstreams = {"pytorch-cu121": world.torch.root_url(world.torch_url)}
    with ExitStack() as stack:
        for build in BUILDS[1:]:
            fake = FakeUpstream("pytorch", prefix=f"/whl/{build}")
            fake.add(make_wheel("torch", f"2.6.0+{build}"))
            upstreams[f"pytorch-{build}"] = fake.root_url(stack.enter_context(fake.running()))
        settings = world.settings(pytorch={"builds": list(BUILDS), "default": "cu121"})
        del settings["upstreams"]["pytorch"]
        settings["upstreams"].update({g: {"mirrors": [url]} for g, url in upstreams.items()})
        _, base = stack.enter_context(proxy_process(settings, tmp_path))
        home = tmp_path / "home"
        home.mkdir()
        yield Lab(base, home, tmp_path / "bin")


def test_a_machine_with_cuda_12_4_gets_cu124_and_pip_and_uv_install_its_torch(
    lab: Lab, tmp_path: Path
) -> None:
    fake_nvidia_smi(lab.bin, "12.4")
    out = lab.run_setup()
    assert "NVIDIA driver 550.54.15 supports CUDA up to 12.4 (nvidia-smi)." in out
    assert "Chose cu124: the newest CUDA build at or below 12.4." in out
    url = f"{lab.base}/cu124/simple/"
    assert lab.pip_conf.read_text().endswith(
        f"[global]\nindex-url = {url}\ntrusted-host = 127.0.0.1\n"
    )
    assert f'url = "{url}"' in lab.uv_toml.read_text()
    # pip and uv, told nothing, find the files the script wrote where they look.
    pip = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--target", "pip", "torch"]
    _client(lab, pip)
    assert installed(lab.home / "pip")["torch"] == "2.6.0+cu124"
    uv = [find_uv_bin(), "pip", "install", "--no-cache", "--target", "uv", "torch"]
    _client(lab, [*uv, "--python", sys.executable])
    assert installed(lab.home / "uv")["torch"] == "2.6.0+cu124"


def _client(lab: Lab, command: list[str]) -> None:
    done = subprocess.run(command, env=lab.env(), cwd=lab.home, capture_output=True, text=True,
                          timeout=CLIENT_TIMEOUT, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_an_nvidia_gpu_cpu_and_a_pinned_index_needs_no_detection(lab: Lab) -> None:
    out = lab.run_setup()
    assert "No nvidia-smi on PATH" in out and "Chose cpu" in out
    assert f"index-url = {lab.base}/cpu/simple/\n" in lab.pip_conf.read_text()
    fake_nvidia_smi(lab.bin, "12.4")
    assert "Chose cu121" in lab.run_setup(path="/cu121/simple/")  # /cu121/setup.py
    assert f"index-url = {lab.base}/cu121/simple/\n" in lab.pip_conf.read_text()


def test_dry_run_writes_nothing_and_undo_restores_the_files_byte_for_byte(lab: Lab) -> None:
    fake_nvidia_smi(lab.bin, "13.0")  # no cu13x build here: the newest 12.x build
    out = lab.run_setup("--dry-run")
    assert "Chose cu124" in out and "pip.conf: would write it to:" in out
    assert lab.files() == set()
    mine = b"# lab settings\r\n[global]\r\ntimeout = 60\r\nindex-url = http://old.test/simple/\r\n"
    lab.pip_conf.parent.mkdir(parents=True)
    lab.pip_conf.write_bytes(mine)
    lab.run_setup()
    written = lab.pip_conf.read_bytes()
    assert b"timeout = 60\r\n" in written and b"old.test" not in written
    assert lab.files() == {".config/pip/pip.conf", ".config/pip/pip.conf.bak-pypi-proxy",
                           ".config/uv/uv.toml"}  # fmt: skip
    out = lab.run_setup("--undo")
    assert "pip.conf: restored from" in out and "uv.toml: removed" in out
    assert lab.pip_conf.read_bytes() == mine
    assert lab.files() == {".config/pip/pip.conf"}


def test_an_unknown_profile_exits_non_zero_and_writes_nothing(lab: Lab) -> None:
    [command] = [s.text for s in setup_commands(lab.base + "/simple/") if s.key == "setup"]
    code = shlex.split(command)[2]
    done = subprocess.run([sys.executable, "-c", code, "--profile", "cu999"], env=lab.env(),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert "--profile cu999: no such profile (there are: cu121, cpu, cu124)" in done.stderr
    assert lab.files() == set()


def test_on_windows_the_files_go_under_appdata(lab: Lab) -> None:
    out = lab.run_setup("--profile", "cu124", windows=True)
    assert "Chose cu124" in out and "as asked (--profile)" in out
    pip_ini = lab.appdata / "pip" / "pip.ini"
    assert f"index-url = {lab.base}/cu124/simple/\n" in pip_ini.read_text()
    assert f'url = "{lab.base}/cu124/simple/"' in (lab.appdata / "uv" / "uv.toml").read_text()
    assert lab.files() == {"AppData/Roaming/pip/pip.ini", "AppData/Roaming/uv/uv.toml"}
