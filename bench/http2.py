"""Would HTTP/2 to the upstreams help? The proxy's own upstream client, over HTTP/1.1 and
over HTTP/2, against one TLS mirror that speaks both, side by side in one run.

    .venv/bin/pip install hypercorn h2 && .venv/bin/python bench/http2.py

The mirror is the test suite's fake upstream, served by hypercorn over TLS (a certificate
made here with openssl), every request 40 ms away. The workload is many small page requests,
as a resolver makes them: one at a time (pip), and 32 at once (uv). Writes
bench/http2-results.md.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from support.process import free_port  # noqa: E402
from support.waiting import wait_for  # noqa: E402

from proxy.core.config_yaml import parse_config  # noqa: E402
from proxy.server.http_client import PAGE_ACCEPT, build_http_client  # noqa: E402

PAGES = 300
DELAY = 0.04
SERVER = """
import sys
sys.path.insert(0, {tests!r})
import asyncio
from hypercorn.asyncio import serve
from hypercorn.config import Config
from support.upstream import FakeUpstream
from support.wheels import make_wheel
up = FakeUpstream("mirror")
for i in range({pages}):
    up.add(make_wheel(f"page{{i}}", "1.0"))
up.page_faults.delay = {delay}
config = Config()
config.bind = ["127.0.0.1:{port}"]
config.certfile, config.keyfile = {cert!r}, {key!r}
config.alpn_protocols = ["h2", "http/1.1"]
config.loglevel = "WARNING"
asyncio.run(serve(up.app, config))
"""


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pypi-proxy-h2-") as tmp:
        work = Path(tmp)
        cert, key = work / "cert.pem", work / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        port = free_port()
        script = SERVER.format(
            tests=str(ROOT / "tests"), pages=PAGES, delay=DELAY, port=port, cert=str(cert),
            key=str(key),
        )  # fmt: skip
        server = subprocess.Popen([sys.executable, "-c", script])
        base = f"https://127.0.0.1:{port}/simple/"
        try:
            wait_for(lambda: _answers(base, cert), seconds=30)
            rows = []
            for label, at_once in (("one at a time (pip)", 1), ("32 at once (uv)", 32)):
                h1 = asyncio.run(_pages(base, cert, False, at_once))
                h2 = asyncio.run(_pages(base, cert, True, at_once))
                rows.append((label, h1, h2))
        finally:
            server.terminate()
            server.wait(timeout=10)
    table = _markdown(rows)
    print(table)
    (ROOT / "bench" / "http2-results.md").write_text(table)
    return 0


def _answers(base: str, cert: Path) -> bool:
    try:
        return httpx.get(base, verify=str(cert), timeout=2).status_code == 200
    except httpx.TransportError:
        return False


async def _pages(base: str, cert: Path, http2: bool, at_once: int) -> tuple[float, float]:
    """Wall and CPU seconds of this process for `PAGES` cold page requests, a fresh client
    (so connections are opened as a cold proxy opens them)."""
    config = parse_config(
        {"upstreams": {"p": {"mirrors": [base]}}, "tls": {"ca_bundle": str(cert)}}
    )
    http = build_http_client(config, http2=http2)
    names = iter(range(PAGES))

    async def asker() -> None:
        for i in names:
            response = await http.get(f"{base}page{i}/", headers={"Accept": PAGE_ACCEPT})
            assert response.status_code == 200, response.status_code
            assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")

    started, cpu = time.monotonic(), time.process_time()
    async with http:
        await asyncio.gather(*(asker() for _ in range(at_once)))
    return time.monotonic() - started, time.process_time() - cpu


def _markdown(rows: list[tuple[str, tuple[float, float], tuple[float, float]]]) -> str:
    lines = [
        f"Measured by `bench/http2.py` on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores:",
        f"{PAGES} cold page requests to one TLS mirror 40 ms away (hypercorn, the fake upstream),",
        "by the proxy's upstream client. CPU: the client's process.",
        "",
        "| requests | HTTP/1.1 wall | HTTP/2 wall | ratio | HTTP/1.1 CPU | HTTP/2 CPU | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, (h1_wall, h1_cpu), (h2_wall, h2_cpu) in rows:
        lines.append(
            f"| {label} | {h1_wall:.2f} s | {h2_wall:.2f} s | {h2_wall / h1_wall:.2f} "
            f"| {h1_cpu:.2f} s | {h2_cpu:.2f} s | {h2_cpu / h1_cpu:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
