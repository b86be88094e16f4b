"""Setup for the clients of an index: pip (Windows, Linux, macOS), uv, Poetry and PDM; and
for the conda channels: conda, mamba and pixi.

One list of snippets feeds both `pypi-proxy client-config` (as text) and the status page (as
blocks with a copy button each), so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from .conda_channels import DEFAULT_CHANNELS

SYSTEMS = ("windows", "linux", "macos")

PIP_CONFIG_PATHS = {
    "windows": r"%APPDATA%\pip\pip.ini",
    "linux": "~/.config/pip/pip.conf",
    "macos": "~/Library/Application Support/pip/pip.conf",
}


@dataclass(frozen=True)
class Snippet:
    key: str  # stable and unique per index: an HTML id on the status page
    client: str  # "pip", "uv", ...
    where: str  # where it goes: a file, or a shell
    text: str
    systems: tuple[str, ...] = SYSTEMS


def pip_ini(index_url: str) -> str:
    """The `pip.ini` / `pip.conf` block for this index; plain http needs `trusted-host`."""
    lines = ["[global]", f"index-url = {index_url}"]
    if urlsplit(index_url).scheme == "http":
        lines.append(f"trusted-host = {urlsplit(index_url).hostname}")
    return "\n".join(lines) + "\n"


def setup_url(index_url: str) -> str | None:
    """The proxy's setup script for an index: `/setup.py` beside `/simple/` (it picks the
    build by the machine's GPU), `/<index>/setup.py` beside `/<index>/simple/`."""
    if not index_url.endswith("/simple/"):
        return None
    return index_url.removesuffix("simple/") + "setup.py"


def setup_commands(index_url: str) -> list[Snippet]:
    """The one-liners that fetch and run the setup script: `py` on Windows, `python3` elsewhere."""
    script = setup_url(index_url)
    if script is None:
        return []
    fetch = f"import urllib.request as u; exec(u.urlopen('{script}').read())"
    does = "picks the build for its GPU" if urlsplit(script).path == "/setup.py" else "this index"
    where = f"one command per machine ({does}; add --dry-run to see first, --profile NAME, --undo)"
    return [
        Snippet("setup-windows", "setup script", where, f'py -c "{fetch}"\n', ("windows",)),
        Snippet("setup", "setup script", where, f'python3 -c "{fetch}"\n', ("linux", "macos")),
    ]


def snippets(index_url: str) -> list[Snippet]:
    """Every way to point a client at this index, for every system."""
    ini = pip_ini(index_url)
    host = urlsplit(index_url).hostname
    pip_set = f"pip config set global.index-url {index_url}\n"
    if "trusted-host" in ini:
        pip_set += f"pip config set global.trusted-host {host}\n"
    powershell = (
        r'New-Item -Force -ItemType Directory "$env:APPDATA\pip" | Out-Null; '
        rf'Set-Content -Path "$env:APPDATA\pip\pip.ini" -Value "{ini.replace(chr(10), "`r`n")}"'
        "\n"
    )
    uv = f'[[index]]\nurl = "{index_url}"\ndefault = true\n'
    unix = ("linux", "macos")
    return [
        *setup_commands(index_url),
        Snippet("pip-windows", "pip", f"in {PIP_CONFIG_PATHS['windows']}", ini, ("windows",)),
        Snippet("pip-powershell", "pip", "or in PowerShell, once", powershell, ("windows",)),
        Snippet("pip-linux", "pip", f"in {PIP_CONFIG_PATHS['linux']}", ini, ("linux",)),
        Snippet("pip-macos", "pip", f"in {PIP_CONFIG_PATHS['macos']}", ini, ("macos",)),
        Snippet("pip-config", "pip", "or with pip itself", pip_set),
        Snippet("uv-windows", "uv", r"in %APPDATA%\uv\uv.toml", uv, ("windows",)),
        Snippet("uv", "uv", "in ~/.config/uv/uv.toml", uv, unix),
        Snippet(
            "poetry",
            "Poetry",
            "in the project",
            f"poetry source add --priority=primary lan {index_url}\n",
        ),
        Snippet("pdm", "PDM", "once", f"pdm config pypi.url {index_url}\n"),
    ]


CONDARC_PATHS = {"windows": r"%USERPROFILE%\.condarc", "linux": "~/.condarc", "macos": "~/.condarc"}


def condarc(conda_url: str, channels: Sequence[str]) -> str:
    """The `.condarc` that sends conda and mamba to the proxy's channels at `conda_url`
    (`http://host:port/conda`): `defaults` and every channel name through it."""
    defaults = [c for c in DEFAULT_CHANNELS if c in channels]
    # Without conda's defaults here, `defaults` would still go to Anaconda: name the channels.
    listed = ["defaults"] if defaults else list(channels)
    lines = ["channels:", *(f"  - {c}" for c in listed), "show_channel_urls: true",
             f"channel_alias: {conda_url}"]  # fmt: skip
    if defaults:
        lines += ["default_channels:", *(f"  - {conda_url}/{c}" for c in defaults)]
    custom = [c for c in channels if "/" not in c]
    if custom:
        lines += ["custom_channels:", *(f"  {c}: {conda_url}" for c in custom)]
    return "\n".join(lines) + "\n"


def conda_url(index_url: str, indexes: Sequence[str]) -> str:
    """Where the proxy serving this index URL serves its conda channels: `<base>/conda`, for
    an index at `<base>/simple/` or `<base>/<index>/simple/` (a base may have a path of its
    own, behind a front end)."""
    base = index_url.rstrip("/").removesuffix("/simple")
    head, _, last = base.rpartition("/")
    return (head if last in indexes and "//" in head else base) + "/conda"


def conda_snippets(conda_url: str, channels: Sequence[str]) -> list[Snippet]:
    """conda and mamba (`.condarc`), and pixi (its mirrors: the channels' usual hosts, sent
    to the proxy), for the channels served."""
    if not channels:
        return []
    rc = condarc(conda_url, channels)
    pixi = (
        "[mirrors]\n"
        f'"https://conda.anaconda.org/" = ["{conda_url}/"]\n'
        f'"https://repo.anaconda.com/pkgs/" = ["{conda_url}/pkgs/"]\n'
    )
    return [
        Snippet(
            "conda-windows", "conda, mamba", f"in {CONDARC_PATHS['windows']}", rc, ("windows",)
        ),
        Snippet("conda", "conda, mamba", "in ~/.condarc", rc, ("linux", "macos")),
        Snippet("pixi", "pixi", "in ~/.pixi/config.toml", pixi),
    ]


def client_setup(
    index_url: str, system: str, conda_url: str = "", channels: Sequence[str] = ()
) -> str:
    """Copy-paste setup, as text, for every client on one operating system (and conda's,
    for the `channels` served at `conda_url`)."""
    blocks = []
    for snippet in snippets(index_url) + conda_snippets(conda_url, channels):
        if system in snippet.systems:
            note = " (or as [[tool.uv.index]] in pyproject.toml)" if snippet.client == "uv" else ""
            blocks.append(f"{snippet.client}, {snippet.where}{note}:\n{snippet.text}")
    return "\n".join(blocks)
