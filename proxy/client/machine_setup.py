"""Points this machine's pip and uv at a pypi-proxy, choosing the PyTorch build its GPU runs.

The proxy serves this file at `/setup.py` (which picks the build) and at `/<index>/setup.py`
(which sets up that index), with `SERVED` below written in for the host the request named.
Fetched and run in one line, on Windows with `py`, elsewhere with `python3`:

    python3 -c "import urllib.request as u; exec(u.urlopen('http://HOST:3141/setup.py').read())"

followed by any of `--profile NAME`, `--dry-run` and `--undo`. It runs on every Python that
still runs pip (3.8 on), on Windows, Linux and macOS, with the standard library alone.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import TypedDict
from urllib.parse import urlsplit


class Profile(TypedDict):
    name: str  # the index, at /<name>/simple/
    cuda: list[int] | None  # the CUDA version its torch is built for: [12, 4]
    torch: str | None  # what it offers of torch, said for people
    default: bool  # the index at /simple/


class Served(TypedDict):
    base: str
    profiles: list[Profile]
    pinned: str | None
    condarc: str  # for the conda channels it serves ("" for none)


# Written in by the proxy as it serves this script: its base URL (for the host the request
# named), its profiles, the profile `/<index>/setup.py` is for (None: `/setup.py`), and the
# .condarc for its conda channels.
SERVED: Served = {"base": "http://127.0.0.1:3141", "profiles": [], "pinned": None, "condarc": ""}

BACKUP = ".bak-pypi-proxy"
CREATED = "# Written by pypi-proxy's setup script: `--undo` removes this file."
UV_BEGIN = "# pypi-proxy: begin (setup --undo restores this file as it was)"
UV_END = "# pypi-proxy: end"
_SECTION = re.compile(r"\s*\[([^\]]*)\]")
_CONTINUATION = re.compile(r"[ \t]+\S")  # an INI value goes on in indented lines


class SetupError(Exception):
    """Something the user has to know before anything is written."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="setup.py", description=f"Point pip and uv at the proxy at {SERVED['base']}."
    )
    names = ", ".join(p["name"] for p in SERVED["profiles"])
    parser.add_argument("--profile", help=f"the index to use, one of: {names}")
    parser.add_argument("--dry-run", action="store_true", help="print what would be written")
    parser.add_argument("--undo", action="store_true", help="restore the files as they were")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        files = config_files(os.environ, os.name == "nt", sys.platform)
        if args.undo:
            for path in files:
                print(undo(path, dry_run=args.dry_run))
            return 0
        profile, reasons = choose(SERVED["profiles"], args.profile, SERVED["pinned"], detect())
        print("\n".join(reasons))
        url = f"{SERVED['base']}/{profile['name']}/simple/"
        pip, uv = files
        edited = {pip: edit_pip_config(read(pip), url), uv: edit_uv_config(read(uv), url)}
        for path, text in edited.items():
            print(apply(path, text, dry_run=args.dry_run))
    except (SetupError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in overrides(os.environ):
        print(f"note: {warning}")
    if not args.dry_run:
        print(f"pip and uv now install from {url}")
    if SERVED["condarc"]:
        where = r"%USERPROFILE%\.condarc" if os.name == "nt" else "~/.condarc"
        print(f"\nconda and mamba: put this in {where} (not written here):\n{SERVED['condarc']}")
    return 0


def detect() -> tuple[tuple[int, int] | None, str]:
    """The newest CUDA the NVIDIA driver supports, as `nvidia-smi` reports it, and what was
    found, said for people."""
    found = shutil.which("nvidia-smi")
    if found is None:
        return None, "No nvidia-smi on PATH: no NVIDIA GPU or driver here."
    try:
        out = subprocess.run([found], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"nvidia-smi did not run ({exc})."
    cuda = re.search(r"CUDA Version\s*:\s*(\d+)\.(\d+)", out)
    if cuda is None:
        return None, "nvidia-smi reports no CUDA version (no GPU, or the driver is not loaded)."
    driver = re.search(r"Driver Version\s*:\s*([\d.]+)", out)
    by = f"NVIDIA driver {driver[1]}" if driver else "The NVIDIA driver"
    version = (int(cuda[1]), int(cuda[2]))
    return version, f"{by} supports CUDA up to {version[0]}.{version[1]} (nvidia-smi)."


def choose(
    profiles: list[Profile],
    asked: str | None,
    pinned: str | None,
    detected: tuple[tuple[int, int] | None, str],
) -> tuple[Profile, list[str]]:
    """The profile to set up, and why, said for people: the one asked for, else the one this
    script is for, else the newest CUDA build the driver runs (`detected`: the newest CUDA it
    supports, None without an NVIDIA GPU, and what was found), else the CPU build."""
    by_name = {p["name"]: p for p in profiles}
    name = asked if asked is not None else pinned
    if name is not None:
        if name not in by_name:
            raise SetupError(f"--profile {name}: no such profile (there are: {', '.join(by_name)})")
        why = "as asked (--profile)" if asked is not None else "the index this script is for"
        return by_name[name], [f"Chose {_described(by_name[name])}: {why}."]
    cuda, found = detected
    builds = [p for p in profiles if p["cuda"]]
    runnable = [p for p in builds if cuda and tuple(p["cuda"] or ()) <= cuda]
    if cuda and runnable:
        best = max(runnable, key=lambda p: p["cuda"] or [])
        why = f"the newest CUDA build at or below {cuda[0]}.{cuda[1]}"
        return best, [found, f"Chose {_described(best)}: {why}."]
    if cuda and builds:
        oldest = min(p["cuda"] or [] for p in builds)
        found += f" Every CUDA build here needs more (the oldest: {oldest[0]}.{oldest[1]})."
    fallback = by_name.get("cpu") or next((p for p in profiles if p["default"]), profiles[0])
    others = ", ".join(p["name"] for p in profiles if p is not fallback)
    another = f"; for another, run again with --profile NAME ({others})" if others else ""
    return fallback, [found, f"Chose {_described(fallback)}{another}."]


def _described(profile: Profile) -> str:
    torch = profile.get("torch")
    return f"{profile['name']} ({torch})" if torch else profile["name"]


def config_files(env: Mapping[str, str], windows: bool, platform: str) -> list[str]:
    """Where pip and uv read this user's configuration: `[pip config, uv.toml]`."""
    if windows:
        appdata = env.get("APPDATA")
        if not appdata:
            raise SetupError("APPDATA is not set; pip and uv keep their settings there")
        return [os.path.join(appdata, "pip", "pip.ini"), os.path.join(appdata, "uv", "uv.toml")]
    home = env.get("HOME") or os.path.expanduser("~")
    pip = os.path.join(home, ".config", "pip")
    # pip on macOS reads ~/Library/Application Support/pip instead, when that folder exists.
    mac = os.path.join(home, "Library", "Application Support", "pip")
    if platform == "darwin" and os.path.isdir(mac):
        pip = mac
    uv = os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "uv")
    return [os.path.join(pip, "pip.conf"), os.path.join(uv, "uv.toml")]


def edit_pip_config(text: str | None, url: str) -> str:
    """The pip config `text` (None: no file yet) with `index-url` (and over plain http,
    `trusted-host`) set in `[global]`, every other line as it was."""
    newline = "\r\n" if text and "\r\n" in text else "\n"
    lines = [] if text is None else text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    if text is None:
        lines.append(CREATED + newline)
    start = next((i for i, line in enumerate(lines) if _section(line) == "global"), None)
    if start is None:  # a section of its own, at the end
        if text:
            lines.append(newline)
        lines.append("[global]" + newline)
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if _section(lines[i])), len(lines))
    host = urlsplit(url).hostname if url.startswith("http://") else None
    keys = ("index-url", "trusted-host") if host else ("index-url",)
    kept, trusted = _without(lines[start + 1 : end], keys)
    ours = [f"index-url = {url}{newline}"]
    if host is not None:
        hosts = trusted + [host] * (host not in trusted)
        ours.append(f"trusted-host = {' '.join(hosts)}{newline}")
    return "".join([*lines[: start + 1], *ours, *kept, *lines[end:]])


def _section(line: str) -> str | None:
    found = _SECTION.match(line)
    return found[1].strip() if found else None


def _without(body: list[str], keys: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """A section's lines without the settings of `keys` (and their continuation lines), and
    the hosts a `trusted-host` setting named, so that they stay trusted."""
    kept: list[str] = []
    trusted: list[str] = []
    dropped = None
    for line in body:
        if dropped is not None and _CONTINUATION.match(line):
            trusted += line.split() if dropped == "trusted-host" else []
            continue
        key, value = _setting(line)
        dropped = key if key in keys else None
        if dropped is None:
            kept.append(line)
        elif dropped == "trusted-host":
            trusted += value.split()
    return kept, trusted


def _setting(line: str) -> tuple[str | None, str]:
    """The key (spelled as pip reads it: any case, `_` as `-`) and value a line sets."""
    if line.lstrip().startswith(("#", ";")) or _CONTINUATION.match(line):
        return None, ""
    found = re.match(r"\s*([^=:]+?)\s*[=:](.*)", line)
    if found is None:
        return None, ""
    return found[1].lower().replace("_", "-"), found[2]


def edit_uv_config(text: str | None, url: str) -> str:
    """The `uv.toml` `text` (None: no file yet) with the proxy as its default index: a block
    of its own, between markers, at the end (where a table may always go); the rest as it was."""
    newline = "\r\n" if text and "\r\n" in text else "\n"
    block = [UV_BEGIN, "[[index]]", 'name = "pypi-proxy"', f'url = "{url}"', "default = true",
             UV_END]  # fmt: skip
    if text is None:
        return newline.join([CREATED, *block]) + newline
    kept = text
    begin, end = text.find(UV_BEGIN), text.find(UV_END)
    if begin != -1 and end > begin:
        kept = text[:begin] + text[end + len(UV_END) :].lstrip("\r\n")
    if kept and not kept.endswith("\n"):
        kept += newline
    edited = kept + newline.join(block) + newline
    _check_toml(edited)
    return edited


def _check_toml(text: str) -> None:
    """Refuses a uv.toml that the edit would leave unreadable (an `index = [...]` written
    inline, say); checked where Python can read TOML (3.11 on)."""
    try:
        import tomllib
    except ImportError:
        return
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"uv.toml would not be valid TOML with the index added ({exc})") from None


def read(path: str) -> str | None:
    """A config file's text, with its line ends as they are; None when there is none."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", newline="") as file:
        return file.read()


def apply(path: str, text: str, *, dry_run: bool) -> str:
    """Writes `text` to `path`, keeping the file it replaces as `<path>.bak-pypi-proxy` (once:
    a second run keeps the first backup, so `--undo` still restores the user's own file)."""
    before = read(path)
    if before == text:
        return f"{path}: already set"
    if dry_run:
        return f"{path}: would {'write' if before is None else 'change'} it to:\n{text}"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    backup = path + BACKUP
    note = ""
    if before is not None and not os.path.exists(backup) and not before.startswith(CREATED):
        shutil.copy2(path, backup)
        note = f" (the one it replaces is kept as {backup})"
    temporary = path + ".tmp-pypi-proxy"
    with open(temporary, "w", encoding="utf-8", newline="") as file:
        file.write(text)
    os.replace(temporary, path)
    return f"{path}: written{note}"


def undo(path: str, *, dry_run: bool) -> str:
    """Puts back what `apply` replaced, or removes a file it created."""
    backup = path + BACKUP
    if os.path.exists(backup):
        if not dry_run:
            os.replace(backup, path)
        return f"{path}: {'would restore' if dry_run else 'restored'} from {backup}"
    if (read(path) or "").startswith(CREATED):
        if not dry_run:
            os.remove(path)
        return f"{path}: {'would remove' if dry_run else 'removed'} (setup had created it)"
    return f"{path}: nothing to undo"


def overrides(env: Mapping[str, str]) -> list[str]:
    """Settings in the environment that win over the files just written."""
    names = ("PIP_INDEX_URL", "PIP_CONFIG_FILE", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX")
    return [f"{n} is set in the environment and wins over these files" for n in names if env.get(n)]


if __name__ == "__main__":
    sys.exit(main())
