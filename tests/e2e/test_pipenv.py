"""pipenv locks through the proxy with no 404 in the proxy's access log: it asks for
`/simple//<project>/` (its index URL ends in `/`), which is redirected to the single-slash
page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from support.clients import CLIENT_TIMEOUT, isolated_env
from support.process import proxy_process
from support.world import TINYAPP, World

# `127.0.0.1 "GET /simple/x/" 200 741 0.017s MISS`: the status after the quoted request.
_ACCESS = re.compile(r'"(?P<request>[A-Z]+ [^"]*)" (?P<status>\d{3}) ')


def test_pipenv_locks_with_no_404(world: World, tmp_path: Path) -> None:
    log = tmp_path / "proxy.log"
    with proxy_process(world.settings(), tmp_path, log=log) as (_, base):
        project = tmp_path / "project"
        project.mkdir()
        (project / "Pipfile").write_text(
            f'[[source]]\nurl = "{base}/simple/"\nverify_ssl = false\nname = "lan"\n\n'
            '[packages]\ntinyapp = "*"\n'
        )
        env = {**isolated_env(), "PIPENV_VENV_IN_PROJECT": "1", "PIPENV_NOSPIN": "1",
               "PIPENV_CACHE_DIR": str(tmp_path / "cache"), "PIPENV_YES": "1"}  # fmt: skip
        done = subprocess.run([str(Path(sys.executable).parent / "pipenv"), "lock"], cwd=project,
                              env=env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT,
                              check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    assert TINYAPP.sha256 in (project / "Pipfile.lock").read_text()
    answers = [m.groupdict() for m in _ACCESS.finditer(log.read_text())]
    assert any("//" in a["request"] for a in answers)  # it did ask for the doubled slash
    assert [a for a in answers if a["status"] == "404"] == []
