"""Real pip and uv, run isolated from this machine's own client configuration (which adds
find-links, extra indexes and constraints that would mask what the proxy serves)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

from uv import find_uv_bin

CLIENT_TIMEOUT = 180


def isolated_env() -> dict[str, str]:
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_")) and k.lower() not in proxies
    }
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1")
    return env


def run(*command: str | Path) -> str:
    result = subprocess.run(
        [str(c) for c in command],
        env=isolated_env(),
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def installed(site: Path) -> dict[str, str]:
    return {d.metadata["Name"]: d.version for d in distributions(path=[str(site)])}


def pip_install(index: str, target: Path, *requirements: str) -> dict[str, str]:
    """`pip install --target` with no client cache; what ended up installed."""
    run(sys.executable, "-m", "pip", "install", "--no-cache-dir", "--index-url", index,
        "--target", target, *requirements)  # fmt: skip
    return installed(target)


def pip_install_configured(config: Path, target: Path, *requirements: str) -> dict[str, str]:
    """`pip install --target` told nothing but this pip config file (where the index is)."""
    env = {**isolated_env(), "PIP_CONFIG_FILE": str(config)}
    command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--target", str(target)]
    done = subprocess.run([*command, *requirements], env=env, capture_output=True, text=True,
                          timeout=CLIENT_TIMEOUT, check=False)  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return installed(target)


def uv_install(index: str, where: Path, *requirements: str) -> dict[str, str]:
    """`uv pip install` into a new venv with an empty cache of its own; what it installed."""
    uv = find_uv_bin()
    venv = where / "venv"
    run(uv, "venv", "--python", sys.executable, venv)
    run(uv, "pip", "install", "--python", venv, "--index-url", index,
        "--cache-dir", where / "uv-cache", *requirements)  # fmt: skip
    site = next(venv.glob("lib/python*/site-packages"), None) or venv / "Lib" / "site-packages"
    return installed(site)


def install(client: str, index: str, where: Path, *requirements: str) -> dict[str, str]:
    where.mkdir(parents=True, exist_ok=True)
    if client == "pip":
        return pip_install(index, where / "target", *requirements)
    return uv_install(index, where, *requirements)
