"""pypi-proxy against references, side by side in one run, on this machine.

    .venv/bin/python bench/run.py [--quick] [--out bench/results.md]

Needs nginx, wrk and curl (Debian: `apt-get install nginx wrk curl`). Measures:

1. cached-file throughput and server CPU seconds per GiB, against nginx serving the same file
   with sendfile;
2. a cold fill with 1, 8 and 32 concurrent clients: upstream GETs, and wall time against one
   client;
3. p50/p99 latency of a 3000-file project page, against nginx serving the same page as a
   static file;
4. the proxy's peak RSS over all of it;
5. a cold `pip download` through the proxy whose first mirror accepts connections and never
   answers (the bundled timeouts), against pip going straight to the mirror that answers;
6. a cold download of a big wheel from one and two mirrors that cap each connection at
   20 MiB/s, against curl fetching it straight (one connection);
7. a cold `pip download` of a 26-wheel tree with every upstream request 40 ms away, and a
   cold `uv pip install` of it on loopback, against each client going straight upstream;
8. a hit from the object-store tier (a replica whose own cache lacks the file, SeaweedFS on
   loopback) and then from the hot tier, against curl fetching the object straight;
9. a conda repodata.json of some 100 MiB, cold (and then a package it lists, once the
   listing is read) and cached, against curl fetching them straight from the mirror, with
   the proxy's RSS growth.

Everything runs on 127.0.0.1; the fake upstream is the test suite's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from uv import find_uv_bin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.clients import isolated_env  # noqa: E402
from support.conda import big_repodata, make_package  # noqa: E402
from support.process import free_port, proxy_process  # noqa: E402
from support.seaweed import bucket_files, seaweed, signed_url, store_cache  # noqa: E402
from support.upstream import FakeUpstream  # noqa: E402
from support.waiting import wait_for  # noqa: E402
from support.wheels import make_wheel  # noqa: E402

GIB = 1024**3
MIB = 1024**2
JSON = "application/vnd.pypi.simple.v1+json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller files, shorter runs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "curl"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"bench: needs {tool} (Debian: apt-get install nginx wrk curl)")
            return 2

    file_size = (128 if args.quick else 1024) * MIB
    fill_size = (64 if args.quick else 256) * MIB
    seconds = 3 if args.quick else 10
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="pypi-proxy-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's worker runs as an unprivileged user
        upstream = FakeUpstream("mirror")
        big = make_wheel("benchbig", "1.0", payload_size=file_size)
        fill = make_wheel("benchfill", "1.0", payload_size=fill_size)
        for wheel in (big, fill):
            upstream.add(wheel)
        page_project = _add_big_page(upstream, 3000)
        upstream_url = stack.enter_context(upstream.running())
        config = {
            "upstreams": {"pypi": {"mirrors": [upstream.root_url(upstream_url)]}},
            "cache": {"min_free": 0},
        }

        process, base = stack.enter_context(
            proxy_process(config, work, "--log-level", "warning", cache_dir=work / "cache")
        )
        big_url = f"{base}/files/benchbig/{big.filename}"
        httpx.get(big_url, timeout=600)  # now cached
        static = work / "static"
        static.mkdir()
        os.link(next((work / "cache" / "files").rglob(big.sha256)), static / big.filename)
        page = httpx.get(f"{base}/simple/{page_project}/", headers={"Accept": JSON})
        (static / "page.json").write_bytes(page.content)
        nginx_base, nginx_pids = stack.enter_context(_nginx(static, work))

        # 1. cached-file throughput and CPU per GiB
        clients = 4
        proxy_rate, proxy_cpu = _throughput(big_url, clients, [process.pid], file_size)
        nginx_rate, nginx_cpu = _throughput(
            f"{nginx_base}/{big.filename}", clients, nginx_pids(), file_size
        )
        rows.append(
            (
                "cached file, 4 clients: throughput",
                f"{proxy_rate / GIB:.2f} GiB/s",
                f"{nginx_rate / GIB:.2f} GiB/s",
                f"{proxy_rate / nginx_rate:.2f}",
            )
        )
        rows.append(
            (
                "cached file: server CPU per GiB",
                f"{proxy_cpu:.2f} s",
                f"{nginx_cpu:.2f} s",
                f"{proxy_cpu / max(nginx_cpu, 1e-3):.1f}",
            )
        )

        # 4. memory while 50 clients download the cached file at once
        growth = _rss_growth(process.pid, lambda: _parallel_curl(big_url, 50))
        rows.append(
            (
                f"cached {file_size // MIB} MiB file to 50 clients at once: RSS growth",
                f"{growth / MIB:.0f} MiB",
                "",
                "",
            )
        )

        # 3. a 3000-file page, p50/p99
        page_url = f"{base}/simple/{page_project}/"
        proxy_lat = _latency(page_url, seconds)
        nginx_lat = _latency(f"{nginx_base}/page.json", seconds)
        for label, index in (("p50", 0), ("p99", 1)):
            rows.append(
                (
                    f"3000-file page ({len(page.content) // 1024} KiB JSON), {label}",
                    f"{proxy_lat[index]:.2f} ms",
                    f"{nginx_lat[index]:.2f} ms",
                    f"{proxy_lat[index] / nginx_lat[index]:.1f}",
                )
            )
        peak = _peak_rss(process.pid)

        # 2. cold fills, each on a fresh cache
        one_client = None
        for clients in (1, 8, 32):
            upstream.reset_log()
            cache = work / f"cold-{clients}"
            with proxy_process(config, work, "--log-level", "warning", cache_dir=cache) as (
                _,
                cold_base,
            ):
                httpx.get(f"{cold_base}/simple/benchfill/")
                took = _parallel_curl(f"{cold_base}/files/benchfill/{fill.filename}", clients)
            gets = upstream.count(fill.filename, method="GET")
            one_client = one_client or took
            rows.append(
                (
                    f"cold fill of {fill_size // MIB} MiB, {clients} clients",
                    f"{gets} upstream GET, {took:.2f} s",
                    "",
                    f"{took / one_client:.2f} x one client",
                )
            )
        rows.append(
            ("proxy peak RSS (all of the above but cold fills)", f"{peak / MIB:.0f} MiB", "", "")
        )

        # 5. a first mirror that accepts connections and never answers, the bundled timeouts
        rows.append(_hanging_mirror(stack, upstream, upstream_url, work))

        # 6. a big wheel from upstreams that cap each connection
        rows += _capped_upstreams(stack, work, (40 if args.quick else 100) * MIB)

        # 7. cold installs of a 26-wheel tree: pip with every upstream request 40 ms away, uv
        rows += _cold_tree(stack, work)

        # 8. hits from the object-store tier and from the hot tier
        rows += _store_tier(stack, work, (64 if args.quick else 256) * MIB)

        # 9. a big conda repodata, cold and cached
        rows += _conda_repodata(stack, work, 80_000 if args.quick else 320_000)

    table = _markdown(rows, quick=args.quick)
    print(table)
    args.out.write_text(table)
    return 0


def _hanging_mirror(
    stack: ExitStack, good: FakeUpstream, good_url: str, work: Path
) -> tuple[str, str, str, str]:
    """A cold `pip download` of one small project through the proxy whose first mirror hangs,
    beside pip going straight to the mirror that answers."""
    small = make_wheel("benchsmall", "1.0")
    good.add(small)
    hanging = FakeUpstream("mirror")
    hanging.page_faults.hang = hanging.file_faults.hang = True
    hanging_url = stack.enter_context(hanging.running())
    mirrors = [hanging.root_url(hanging_url), good.root_url(good_url)]
    config = {
        "upstreams": {"pypi": {"mirrors": mirrors}},
        "cache": {"min_free": 0},
        "timeouts": {"connect": "10s", "first_byte": "30s", "stall": "60s"},  # as bundled
    }
    with proxy_process(config, work, "--log-level", "warning", cache_dir=work / "hedge") as (
        _,
        base,
    ):
        proxy = _pip_download(f"{base}/simple/", work / "through-proxy")
    direct = _pip_download(good.root_url(good_url), work / "direct")
    return (
        "first mirror hangs: cold `pip download` of one small project",
        f"{proxy:.2f} s",
        f"{direct:.2f} s (pip straight to the mirror that answers)",
        f"{proxy / direct:.2f}",
    )


def _capped_upstreams(stack: ExitStack, work: Path, size: int) -> list[tuple[str, str, str, str]]:
    """A cold download of a big wheel through the proxy (bundled `downloads` settings) from
    one, then two, mirrors that cap each connection at 20 MiB/s (nginx's `limit_rate`: the
    fake upstream cannot send that fast over several connections at once), beside curl
    fetching it straight from one of them (one connection)."""
    wheel = make_wheel("benchcapped", "1.0", payload_size=size)
    root = work / "capped"
    (root / "simple" / "benchcapped").mkdir(parents=True)
    (root / "files").mkdir()
    (root / "files" / wheel.filename).write_bytes(wheel.content)
    link = f'<a href="../../files/{wheel.filename}#sha256={wheel.sha256}">{wheel.filename}</a>'
    (root / "simple" / "benchcapped" / "index.html").write_text(f"<html><body>{link}</body></html>")
    rate = "limit_rate 20m;"
    mirrors = [stack.enter_context(_nginx(root, work, f"capped{i}", rate))[0] for i in (1, 2)]
    direct = _parallel_curl(f"{mirrors[0]}/files/{wheel.filename}", 1)
    rows = []
    for count in (1, 2):
        roots = [f"{base}/simple/" for base in mirrors[:count]]
        config = {"upstreams": {"pypi": {"mirrors": roots}}, "cache": {"min_free": 0}}
        cache = work / f"capped-{count}"
        with proxy_process(config, work, "--log-level", "warning", cache_dir=cache) as (_, base):
            httpx.get(f"{base}/simple/benchcapped/")
            took = _parallel_curl(f"{base}/files/benchcapped/{wheel.filename}", 1)
        rows.append(
            (
                f"cold {size // MIB} MiB wheel, {count} mirror(s) capped at 20 MiB/s a connection",
                f"{took:.2f} s",
                f"{direct:.2f} s (curl straight from one, one connection)",
                f"{direct / took:.2f} x one connection",
            )
        )
    return rows


def _store_tier(stack: ExitStack, work: Path, size: int) -> list[tuple[str, str, str, str]]:
    """One replica fetches a wheel and uploads it to the bucket; a second, its own cache
    empty, serves it from the bucket (verified into its hot tier as it streams), then from
    its hot tier; curl fetches the object straight from the bucket beside them."""
    s3 = stack.enter_context(seaweed(work / "s3"))
    wheel = make_wheel("benchstore", "1.0", payload_size=size)
    upstream = FakeUpstream("mirror")
    upstream.add(wheel)
    root = upstream.root_url(stack.enter_context(upstream.running()))
    prefix = "bench"

    def config(name: str) -> dict[str, object]:
        cache = {**store_cache(s3, work / name, prefix), "min_free": 0}
        return {"upstreams": {"pypi": {"mirrors": [root]}}, "cache": cache}

    path = f"/files/benchstore/{wheel.filename}"
    quiet = ("--log-level", "warning")
    with proxy_process(config("store-a"), work, *quiet, env=s3.credentials) as (_, first):
        httpx.get(first + path, timeout=600)
        wait_for(lambda: wheel.sha256 in bucket_files(s3.endpoint, prefix, names_only=True), 300)
    with proxy_process(config("store-b"), work, *quiet, env=s3.credentials) as (_, second):
        httpx.get(f"{second}/simple/benchstore/")
        from_store = _parallel_curl(second + path, 1)
        from_hot = _parallel_curl(second + path, 1)
    direct = _parallel_curl(signed_url(s3.endpoint, prefix, wheel.sha256), 1)
    mib = size / MIB
    return [
        (
            f"{size // MIB} MiB wheel from the object-store tier (SeaweedFS), 1 client",
            f"{mib / from_store:.0f} MiB/s",
            f"{mib / direct:.0f} MiB/s (curl straight from the bucket)",
            f"{direct / from_store:.2f} x the bucket",
        ),
        (
            "the same wheel from the hot tier next",
            f"{mib / from_hot:.0f} MiB/s",
            "",
            f"{from_store / from_hot:.1f} x the store tier",
        ),
    ]


def _conda_repodata(stack: ExitStack, work: Path, count: int) -> list[tuple[str, str, str, str]]:
    """A repodata.json of `count` packages through a fresh proxy: the first client gets it
    once it is downloaded, and a package of it once the listing is read; the next gets it
    from disk. curl fetches both straight from the mirror beside them."""
    package = make_package("benchconda", "1.0", subdir="linux-64")
    document = big_repodata(count, package)
    upstream = FakeUpstream("mirror")
    channel = "/anaconda/pkgs/main/linux-64"
    upstream.add_blob(f"{channel}/repodata.json", document)
    upstream.add_blob(f"{channel}/{package.filename}", package.content)
    url = stack.enter_context(upstream.running())
    config = {
        "upstreams": {"pypi": {"mirrors": [f"{url}/simple/"]}},
        "conda": {"upstreams": {"anaconda": {"mirrors": [f"{url}/anaconda/"]}},
                  "channels": {"pkgs/main": "anaconda/pkgs/main"}},
        "cache": {"min_free": 0},
    }  # fmt: skip
    direct = _parallel_curl(f"{url}{channel}/repodata.json", 1)
    direct_both = direct + _parallel_curl(f"{url}{channel}/{package.filename}", 1)
    proxied = "/conda/pkgs/main/linux-64"
    with proxy_process(config, work, "--log-level", "warning", cache_dir=work / "conda") as (
        process,
        base,
    ):
        timed: list[float] = []

        def cold() -> None:
            timed.append(_parallel_curl(f"{base}{proxied}/repodata.json", 1))
            timed.append(_parallel_curl(f"{base}{proxied}/{package.filename}", 1))

        growth = _rss_growth(process.pid, cold)
        cached = _parallel_curl(f"{base}{proxied}/repodata.json", 1)
    mib = len(document) / MIB
    straight = "(curl straight from the mirror)"
    return [
        (
            f"cold {mib:.0f} MiB conda repodata.json ({count:,} packages), 1 client",
            f"{timed[0]:.2f} s, RSS +{growth / MIB:.0f} MiB",
            f"{direct:.2f} s {straight}",
            f"{timed[0] / direct:.1f} x direct",
        ),
        (
            "and then a package it lists (waits for the listing)",
            f"{timed[0] + timed[1]:.2f} s in all",
            f"{direct_both:.2f} s {straight}",
            f"{(timed[0] + timed[1]) / direct_both:.1f} x direct",
        ),
        (
            "the same repodata.json cached",
            f"{cached:.2f} s",
            f"{direct:.2f} s {straight}",
            f"{cached / direct:.2f} x direct",
        ),
    ]


def _cold_tree(stack: ExitStack, work: Path) -> list[tuple[str, str, str, str]]:
    """A cold `pip download` of a 26-wheel tree (a root, five projects it requires, four
    more under each) with every upstream request 40 ms away, and a cold `uv pip install` of
    it on loopback: through the proxy (bundled settings), beside the client going direct."""
    upstream = FakeUpstream("mirror")
    leaves = [[f"benchleaf{i}x{j}" for j in range(4)] for i in range(5)]
    for group in leaves:
        for name in group:
            upstream.add(make_wheel(name, "1.0", payload_size=20_000), metadata=True)
    middles = [f"benchmid{i}" for i in range(5)]
    for name, group in zip(middles, leaves, strict=True):
        upstream.add(make_wheel(name, "1.0", requires=group, payload_size=20_000), metadata=True)
    upstream.add(make_wheel("benchroot", "1.0", requires=middles), metadata=True)
    direct = upstream.root_url(stack.enter_context(upstream.running()))
    config = {"upstreams": {"pypi": {"mirrors": [direct]}}, "cache": {"min_free": 0}}
    rows = []
    for client, delay in (("pip download", 0.04), ("uv pip install", None)):
        upstream.page_faults.delay = upstream.file_faults.delay = delay
        cache = work / f"tree-{client.split()[0]}"
        with proxy_process(config, work, "--log-level", "warning", cache_dir=cache) as (_, base):
            proxy = _install_tree(client, f"{base}/simple/", work / f"{cache.name}-proxy")
        went_direct = _install_tree(client, direct, work / f"{cache.name}-direct")
        where = "every upstream request 40 ms away" if delay else "loopback"
        rows.append(
            (
                f"cold `{client}` of a 26-wheel tree, {where}",
                f"{proxy:.2f} s",
                f"{went_direct:.2f} s (straight to the upstream)",
                f"{proxy / went_direct:.2f} x direct",
            )
        )
    return rows


def _install_tree(client: str, index: str, into: Path) -> float:
    if client == "pip download":
        command = [sys.executable, "-m", "pip", "download", "--no-cache-dir", "-d", str(into),
                   "--index-url", index, "benchroot"]  # fmt: skip
    else:
        uv = find_uv_bin()
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(into)], check=True)
        command = [uv, "pip", "install", "-q", "--no-cache", "--python", str(into / "bin/python"),
                   "--index-url", index, "benchroot"]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, env=isolated_env(), check=True, capture_output=True, timeout=300)
    return time.monotonic() - started


def _pip_download(index: str, into: Path) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-cache-dir", "--no-deps", "-d", str(into),
         "--index-url", index, "benchsmall"],
        env=isolated_env(), check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return time.monotonic() - started


def _add_big_page(upstream: FakeUpstream, count: int) -> str:
    for i in range(count):
        upstream.add(make_wheel("bigpage", f"1.{i}"))
    return "bigpage"


@contextmanager
def _nginx(
    root: Path, work: Path, name: str = "nginx", server: str = ""
) -> Iterator[tuple[str, Callable[[], list[int]]]]:
    """nginx serving `root` with sendfile (and `server`, more directives for the server)."""
    port = free_port()
    conf = work / f"{name}.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        {server}
    }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen([nginx, "-c", str(conf)])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(base + "/", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)

    def pids() -> list[int]:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
        return [process.pid, *map(int, children.split())]

    try:
        yield base, pids
    finally:
        process.terminate()
        process.wait(timeout=10)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _parallel_curl(url: str, clients: int) -> float:
    started = time.monotonic()
    procs = [subprocess.Popen(["curl", "-sf", "-o", "/dev/null", url]) for _ in range(clients)]
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise RuntimeError(f"curl {url} failed")
    return time.monotonic() - started


def _throughput(url: str, clients: int, pids: list[int], size: int) -> tuple[float, float]:
    """Bytes per second over `clients` parallel downloads, and server CPU seconds per GiB."""
    before = _cpu_seconds(pids)
    took = _parallel_curl(url, clients)
    cpu = _cpu_seconds(pids) - before
    moved = clients * size
    return moved / took, cpu / (moved / GIB)


def _latency(url: str, seconds: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-H", f"Accept: {JSON}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {
        percent: _ms(value, unit)
        for percent, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    }
    return found["50"], found["99"]


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _rss_growth(pid: int, work: Callable[[], object]) -> int:
    """How far the process's resident memory rose above where it was while `work` ran."""
    baseline = peak = _rss(pid)
    runner = threading.Thread(target=work)
    runner.start()
    while runner.is_alive():
        peak = max(peak, _rss(pid))
        runner.join(0.02)
    return peak - baseline


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _markdown(rows: list[tuple[str, str, str, str]], *, quick: bool) -> str:
    cpus = os.cpu_count()
    lines = [
        f"Measured by `bench/run.py{' --quick' if quick else ''}` on {time.strftime('%Y-%m-%d')}, "
        f"{cpus} cores, everything on 127.0.0.1 (clients: curl and wrk).",
        "",
        "| measure | pypi-proxy | reference (nginx) | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
