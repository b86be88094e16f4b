"""A real HAProxy (Debian's `haproxy`) on 127.0.0.1, run with the configuration the README gives
for replicas, its `bind` and `server` lines pointed at the test's ports."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .process import free_port, stop
from .repo import ROOT
from .waiting import wait_for

_DEBIAN = Path("/usr/sbin/haproxy")
HAPROXY = shutil.which("haproxy") or (str(_DEBIAN) if _DEBIAN.exists() else None)


def readme_config(port: int, replicas: list[str]) -> str:
    """The README's HAProxy configuration, listening on `port`, in front of `replicas`
    (`host:port` each)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```haproxy\n", 1)[1].split("```", 1)[0]
    block = re.sub(r"(?m)^(\s*)bind :\d+", rf"\1bind 127.0.0.1:{port}", block)
    block = re.sub(r"(?m)^\s*server .*\n", "", block)
    servers = "".join(f"    server replica{n} {r}\n" for n, r in enumerate(replicas, 1))
    return block + servers


@contextmanager
def haproxy(workdir: Path, replicas: list[str]) -> Iterator[str]:
    """HAProxy in front of the replicas; yields its base URL once it listens."""
    assert HAPROXY, "HAProxy is not installed (apt-get install haproxy; .ci/run does)"
    port = free_port()
    config = workdir / f"haproxy-{port}.cfg"
    config.write_text(readme_config(port, replicas))
    log = open(workdir / f"haproxy-{port}.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip

    def listening() -> bool:
        assert process.poll() is None, (workdir / f"haproxy-{port}.log").read_text()
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, seconds=15)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
        log.close()
