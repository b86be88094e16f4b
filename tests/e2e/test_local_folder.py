"""A lab's own folder of wheels as an upstream, routed first for its names: pip installs the
lab's wheel through the proxy, and a higher version of the same name on the mirror never
replaces it."""

from __future__ import annotations

from pathlib import Path

from support.clients import install
from support.wheels import make_wheel
from support.world import World

LAB = make_wheel("labtools", "1.0", requires=["tinylib"])
LOOK_ALIKE = make_wheel("labtools", "9.9")


def test_pip_installs_the_lab_s_wheel_and_never_the_mirror_s_higher_version(
    world: World, tmp_path: Path
) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / LAB.filename).write_bytes(LAB.content)
    world.mirror.add(LOOK_ALIKE)
    upstreams = {"lab": {"mirrors": [{"path": str(folder), "kind": "local"}]},
                 "pypi": {"mirrors": [world.mirror.root_url(world.mirror_url)]}}  # fmt: skip
    routes = [{"projects": ["labtools"], "upstreams": ["lab"]},
              {"projects": ["*"], "upstreams": ["pypi"]}]  # fmt: skip
    with world.proxy(upstreams=upstreams, routes=routes) as base:
        for client in ("pip", "uv"):
            got = install(client, f"{base}/simple/", tmp_path / client, "labtools")
            assert got == {"labtools": "1.0", "tinylib": "1.1"}
    assert world.mirror.count("/simple/labtools/") == 0  # never even asked
    assert LAB.sha256 in world.cached_files()
