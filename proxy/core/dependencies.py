"""What a client will ask for next, read from a wheel's core metadata: the projects it
requires, in the client's environment as far as its User-Agent tells, and which of their files
it is likely to pick. Guesses for warming the cache, never decisions: a wrong one costs a
request, a missed one costs nothing but the time the client would have spent anyway.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import Any

from packaging.markers import Marker, default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .model import FileLink, NormalizedName, normalize

_SYSTEMS = {  # platform.system() -> (sys.platform, os.name, a wheel platform tag's start)
    "Linux": ("linux", "posix", ("manylinux", "musllinux", "linux")),
    "Windows": ("win32", "nt", ("win",)),
    "Darwin": ("darwin", "posix", ("macosx",)),
}


@dataclass(frozen=True)
class Client:
    """The environment a client runs in, from its User-Agent; None where it does not say."""

    python: Version | None = None
    system: str | None = None  # as platform.system() names it: Linux, Windows, Darwin
    # As platform.machine() names it (x86_64, aarch64; AMD64 on Windows, arm64 on macOS):
    # lowercased, as wheels' platform tags name it too (manylinux_x86_64, win_amd64).
    machine: str | None = None

    def markers(self) -> dict[str, str] | None:
        """The marker environment, if the client told enough to evaluate markers."""
        if self.python is None or self.system not in _SYSTEMS or self.machine is None:
            return None
        sys_platform, os_name, _ = _SYSTEMS[self.system]
        env = {k: str(v) for k, v in default_environment().items()}
        version = f"{self.python.major}.{self.python.minor}"
        env.update(
            python_version=version,
            python_full_version=str(self.python),
            implementation_name="cpython",
            platform_python_implementation="CPython",
            sys_platform=sys_platform,
            platform_system=self.system,
            platform_machine=self.machine,
            os_name=os_name,
        )
        return env


def client_of(user_agent: str | None) -> Client:
    """pip and uv send `name/version {json}`: python, system and cpu are read from it."""
    _, _, rest = (user_agent or "").partition(" ")
    try:
        data: Any = json.loads(rest)
        python = Version(data.get("python") or "")
    except (ValueError, InvalidVersion, AttributeError):
        return Client()
    system = (data.get("system") or {}).get("name")
    return Client(python, system, str(data.get("cpu") or "") or None)


def requirements(metadata: bytes, client: Client) -> list[Requirement]:
    """The `Requires-Dist` of a core metadata file that apply without extras, in the client's
    environment (all of them when it is not known)."""
    headers = BytesHeaderParser().parsebytes(metadata)
    env = client.markers()
    found = []
    for line in headers.get_all("Requires-Dist") or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is None or _applies(requirement.marker, env):
            found.append(requirement)
    return found


def _applies(marker: Marker, env: dict[str, str] | None) -> bool:
    if "extra" in str(marker):
        return False  # asked for with an extra, which the metadata alone does not tell
    return env is None or marker.evaluate(env)


def likely_files(
    files: Iterable[FileLink], requirement: Requirement, client: Client
) -> list[FileLink]:
    """The wheels of the newest version the requirement allows (no pre-release, nothing
    yanked) that the client can install, as far as it can be told; none when the client did
    not say where it runs, but for wheels that run anywhere."""
    candidates: dict[Version, list[FileLink]] = {}
    for link in files:
        version = _wheel_version(link)
        if version is None or link.yanked or version.is_prerelease:
            continue
        if version in requirement.specifier and _python_fits(link, client):
            candidates.setdefault(version, []).append(link)
    if not candidates:
        return []
    return [f for f in candidates[max(candidates)] if _runs_on(f.filename, client)]


def project_name(requirement: Requirement) -> NormalizedName:
    return normalize(requirement.name)


def _wheel_version(link: FileLink) -> Version | None:
    """The wheel's version; None for a variant wheel too (packaging rejects its name): only
    installers that know variants take those, choosing by the variants.json."""
    try:
        return parse_wheel_filename(link.filename)[1]
    except (InvalidWheelFilename, InvalidVersion):
        return None


def _python_fits(link: FileLink, client: Client) -> bool:
    if client.python is None or not link.requires_python:
        return True
    try:
        return client.python in SpecifierSet(link.requires_python)
    except InvalidSpecifier:
        return True


def _runs_on(filename: str, client: Client) -> bool:
    tags = parse_wheel_filename(filename)[3]
    return any(_tag_fits(t.interpreter, t.abi, t.platform, client) for t in tags)


def _tag_fits(interpreter: str, abi: str, platform: str, client: Client) -> bool:
    if platform == "any":
        return interpreter.startswith("py") or _cpython_fits(interpreter, abi, client)
    if client.system not in _SYSTEMS or client.machine is None:
        return False
    starts, arch = _SYSTEMS[client.system][2], client.machine.lower()
    fits_platform = platform.startswith(starts) and (
        arch in platform or platform.endswith("universal2")
    )
    return fits_platform and _cpython_fits(interpreter, abi, client)


def _cpython_fits(interpreter: str, abi: str, client: Client) -> bool:
    if client.python is None:
        return False
    ours = f"cp{client.python.major}{client.python.minor}"
    if interpreter == ours or interpreter.startswith("py3"):
        return True
    # abi3 wheels run on the CPython they name and every later one
    digits = interpreter.removeprefix("cp")
    if abi == "abi3" and digits.isdigit() and len(digits) >= 2:
        return (int(digits[0]), int(digits[1:])) <= (client.python.major, client.python.minor)
    return False
