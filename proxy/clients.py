"""Setup for the clients of an index: pip (Windows, Linux, macOS), uv, Poetry and PDM."""

from __future__ import annotations

from urllib.parse import urlsplit

SYSTEMS = ("windows", "linux", "macos")


def pip_ini(index_url: str) -> str:
    """The `pip.ini` / `pip.conf` block for this index; plain http needs `trusted-host`."""
    lines = ["[global]", f"index-url = {index_url}"]
    if urlsplit(index_url).scheme == "http":
        lines.append(f"trusted-host = {urlsplit(index_url).hostname}")
    return "\n".join(lines) + "\n"


def client_setup(index_url: str, system: str) -> str:
    """Copy-paste setup, as text, for every client on one operating system."""
    ini = pip_ini(index_url)
    if system == "windows":
        path = r"%APPDATA%\pip\pip.ini"
        body = ini.replace("\n", "`r`n")
        pip = [
            f"pip, in {path}:",
            ini,
            "or in PowerShell, once:",
            r'New-Item -Force -ItemType Directory "$env:APPDATA\pip" | Out-Null; '
            rf'Set-Content -Path "$env:APPDATA\pip\pip.ini" -Value "{body}"',
        ]
    else:
        path = (
            "~/.config/pip/pip.conf"
            if system == "linux"
            else "~/Library/Application Support/pip/pip.conf"
        )
        pip = [f"pip, in {path}:", ini]
    pip += ["", "or with pip itself:", f"pip config set global.index-url {index_url}"]
    if "trusted-host" in ini:
        pip.append(f"pip config set global.trusted-host {urlsplit(index_url).hostname}")
    uv_path = r"%APPDATA%\uv\uv.toml" if system == "windows" else "~/.config/uv/uv.toml"
    return (
        "\n".join(
            [
                *pip,
                "",
                f"uv, in {uv_path} (or as [[tool.uv.index]] in pyproject.toml):",
                "[[index]]",
                f'url = "{index_url}"',
                "default = true",
                "",
                "Poetry:",
                f"poetry source add --priority=primary lan {index_url}",
                "",
                "PDM:",
                f"pdm config pypi.url {index_url}",
            ]
        )
        + "\n"
    )
