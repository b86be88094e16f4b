"""The Dockerfile's HEALTHCHECK against a real proxy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from support.repo import dockerfile_instruction
from support.world import World


def test_the_healthcheck_command_follows_health(world: World, tmp_path: Path) -> None:
    """The image's HEALTHCHECK, pointed at a running proxy: passes while it serves, fails
    when it cannot write its cache."""
    command = json.loads(dockerfile_instruction("HEALTHCHECK").split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    with world.proxy() as base:
        code = command[2].replace("http://127.0.0.1:3141", base)
        assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0
        tmp = world.cache_dir / "tmp"
        shutil.rmtree(tmp)
        tmp.write_text("in the way")
        failed = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        assert failed.returncode != 0 and b"503" in failed.stderr
