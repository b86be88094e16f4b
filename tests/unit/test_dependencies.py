"""Reading what a client will ask for next: its environment from the User-Agent, the
requirements of a core metadata file that apply there, and the files it will likely pick."""

from __future__ import annotations

import json

from packaging.requirements import Requirement
from packaging.version import Version

from proxy.core.dependencies import Client, client_of, likely_files, requirements
from proxy.core.model import FileLink

LINUX = Client(Version("3.11.4"), "Linux", "x86_64")
WINDOWS = Client(Version("3.12.1"), "Windows", "AMD64")
METADATA = b"""Metadata-Version: 2.1
Name: app
Version: 1.0
Requires-Dist: numpy>=1.20
Requires-Dist: colorama; sys_platform == "win32"
Requires-Dist: tomli; python_version < "3.11"
Requires-Dist: pytest; extra == "test"
Requires-Dist: not a requirement!!

Long description, with a line that looks like a header:
Requires-Dist: bogus
"""


def _agent(name: str, python: str, system: str, cpu: str) -> str:
    data = {"installer": {"name": name}, "python": python, "system": {"name": system}, "cpu": cpu}
    return f"{name}/1.0 {json.dumps(data)}"


def test_pip_and_uv_say_where_they_run_in_their_user_agent() -> None:
    assert client_of(_agent("pip", "3.11.4", "Linux", "x86_64")) == LINUX
    assert client_of(_agent("uv", "3.12.1", "Windows", "AMD64")) == WINDOWS
    assert client_of("curl/8.5.0") == Client()
    assert client_of(None) == Client()
    assert client_of('pip/1 {"python": "not a version"}') == Client()


def test_requirements_that_apply_in_the_client_s_environment_without_extras() -> None:
    def names(client: Client) -> list[str]:
        return [r.name for r in requirements(METADATA, client)]

    assert names(LINUX) == ["numpy"]
    assert names(WINDOWS) == ["numpy", "colorama"]
    assert names(Client(Version("3.10.0"), "Linux", "aarch64")) == ["numpy", "tomli"]
    # Not knowing the environment, every marker but an extra may apply.
    assert names(Client()) == ["numpy", "colorama", "tomli"]


def _link(filename: str, **more: object) -> FileLink:
    return FileLink(filename, f"https://m.test/{filename}", **more)  # type: ignore[arg-type]


FILES = [
    _link("numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
    _link("numpy-2.1.0-cp311-cp311-win_amd64.whl"),
    _link("numpy-2.1.0-cp312-cp312-win_amd64.whl"),
    _link("numpy-2.1.0-cp312-cp312-macosx_14_0_arm64.whl"),
    _link("numpy-2.1.0.tar.gz"),
    _link("numpy-2.2.0rc1-cp311-cp311-manylinux_2_17_x86_64.whl"),
    _link("numpy-2.3.0-cp311-cp311-manylinux_2_17_x86_64.whl", yanked="broken"),
    _link("numpy-1.26.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
    _link("numpy-2.4.0-cp313-cp313-manylinux_2_17_x86_64.whl", requires_python=">=3.13"),
]


def test_the_newest_allowed_version_s_wheels_for_the_client_s_machine() -> None:
    def picked(spec: str, client: Client) -> list[str]:
        return [f.filename for f in likely_files(FILES, Requirement(spec), client)]

    assert picked("numpy", LINUX) == [FILES[0].filename]
    assert picked("numpy", WINDOWS) == [FILES[2].filename]
    assert picked("numpy<2", LINUX) == [FILES[7].filename]
    assert picked("numpy", Client(Version("3.12.0"), "Darwin", "arm64")) == [FILES[3].filename]
    assert picked("numpy", Client()) == []  # platform wheels only: no telling which


def test_pure_and_abi3_wheels_fit_where_they_say() -> None:
    pure = _link("six-1.16.0-py2.py3-none-any.whl")
    abi3 = _link("cryptography-43.0.0-cp39-abi3-manylinux_2_28_x86_64.whl")
    assert likely_files([pure], Requirement("six"), Client()) == [pure]
    assert likely_files([abi3], Requirement("cryptography"), LINUX) == [abi3]
    old = Client(Version("3.8.10"), "Linux", "x86_64")
    assert likely_files([abi3], Requirement("cryptography"), old) == []
