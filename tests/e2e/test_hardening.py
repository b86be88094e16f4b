"""The proxy tested as an attacker would: hostile pages, amplification, clients that hold on,
links that point inward, forged log lines. Each test fails without the fix it is named for."""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from support.process import proxy_process
from support.servers import serve
from support.upstream import JSON_V1
from support.waiting import wait_for
from support.wheels import make_wheel
from support.world import BIG, World

from proxy import create_app

HOSTILE = b"<a " * 40_000  # 120 KB: a minute of CPython's HTMLParser, parsed inline before


def test_a_hostile_page_does_not_freeze_the_proxy(world: World) -> None:
    world.mirror.add_raw_page("hostile", HOSTILE, "text/html")
    with world.proxy() as base:
        answers: list[int] = []
        asking = threading.Thread(
            target=lambda: answers.append(
                httpx.get(f"{base}/simple/hostile/", timeout=60).status_code
            )
        )
        asking.start()
        time.sleep(0.3)
        started = time.monotonic()
        assert httpx.get(f"{base}/-/health", timeout=5).status_code == 200
        health_took = time.monotonic() - started
        asking.join(timeout=30)
    assert answers == [503] and health_took < 5  # not an index page, and nothing else waited


def test_a_login_page_is_not_cached_as_a_project_without_files(world: World) -> None:
    login = b"<html><body><form action=/login><input name=user></form></body></html>"
    world.mirror.add_raw_page("tinyapp", login, "text/html")
    with world.proxy() as base:
        refused = httpx.get(f"{base}/simple/tinyapp/", headers={"Accept": JSON_V1}, timeout=10)
        assert refused.status_code == 503 and "not an index page" in refused.text
        world.mirror.drop_raw_pages()  # the portal lets the proxy through
        page = httpx.get(f"{base}/simple/tinyapp/", headers={"Accept": JSON_V1}, timeout=10)
        assert page.status_code == 200 and page.json()["versions"] == ["1.0"]


# -- deadlines for clients ------------------------------------------------------------------


def dribbled_and_cut(sock: socket.socket, bytes_: int) -> bool:
    """Send a byte every 0.3 s (the connection never idle, the headers never done): whether
    the server cut it off within a second of the last, and 3.5 s in all."""
    started = time.monotonic()
    for _ in range(bytes_):
        time.sleep(0.3)
        try:
            sock.sendall(b"X")
        except (BrokenPipeError, ConnectionResetError):
            break
    return closed_within(sock, 1) and time.monotonic() - started < 3.5


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (reading what it sends)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_a_client_dribbling_its_headers_is_cut_off(world: World, tmp_path: Path) -> None:
    config = world.settings(timeouts={"client_header": "1s"})
    with proxy_process(config, tmp_path) as (_, base):
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n")
            assert dribbled_and_cut(sock, 10)
        assert httpx.get(f"{base}/-/health", timeout=5).status_code == 200


def test_a_client_that_stops_reading_is_cut_off(world: World) -> None:
    big = make_wheel("hugepkg", "1.0", payload_size=24 * 1024 * 1024)
    world.mirror.add(big)
    with world.proxy(timeouts={"client_send": "1s"}) as base:
        url = f"{base}/files/hugepkg/{big.filename}"
        assert len(httpx.get(url, timeout=30).content) == big.size  # cached
        host, port = base.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        with sock:
            request = f"GET /files/hugepkg/{big.filename} HTTP/1.1\r\nHost: x\r\n\r\n"
            sock.sendall(request.encode())
            time.sleep(3)  # reading nothing
            received = 0
            sock.settimeout(5)
            try:
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
            except ConnectionResetError:
                pass
        assert received < big.size  # the rest never came: the connection was closed


# -- files and logs -------------------------------------------------------------------------


def healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/-/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def limit_open_files(count: int) -> Callable[[], None]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count, 256), count))

    return limit


def test_the_open_files_limit_is_raised_and_accept_errors_are_reported_once(
    world: World, tmp_path: Path
) -> None:
    log = tmp_path / "proxy.log"
    with proxy_process(world.settings(), tmp_path, log=log, preexec=limit_open_files(100)) as (
        process,
        base,
    ):
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        soft, hard = next(
            line.split()[3:5] for line in limits.splitlines() if line.startswith("Max open files")
        )
        assert soft == hard == "100"
        host, port = base.removeprefix("http://").split(":")
        crowd = [socket.create_connection((host, int(port))) for _ in range(150)]
        time.sleep(3.5)  # asyncio retries a failed accept every second
        for sock in crowd:
            sock.close()
        wait_for(lambda: healthy(base))
    # asyncio's own report says "socket.accept() out of system resource".
    reports = [
        line
        for line in log.read_text().splitlines()
        if "cannot accept" in line or "out of system resource" in line
    ]
    assert len(reports) == 1, reports


def test_control_characters_from_requests_are_escaped_in_the_text_log(
    world: World, tmp_path: Path
) -> None:
    log = tmp_path / "proxy.log"
    with proxy_process(world.settings(), tmp_path, log=log) as (_, base):
        forged = "/simple/x%0a2026-12-01 12:00:00,000 INFO pypi_proxy.access: forged%1b[2J/"
        httpx.get(base + forged, timeout=10)
    lines = log.read_text().splitlines()
    assert not any(line.startswith("2026-12-01 12:00:00,000") for line in lines)
    access = next(line for line in lines if "forged" in line)
    assert "x\\n2026-12-01" in access and "\\x1b[2J" in access and "\x1b" not in access


# -- the upstream connection pool -----------------------------------------------------------


def in_thread(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_ranges_far_ahead_of_a_download_are_bounded_per_file(world: World) -> None:
    gate = threading.Event()
    world.mirror.file_faults.gate = gate
    tail = BIG.content[-100:]
    results: list[bool] = []
    with world.proxy() as base:
        url = f"{base}/files/bigpkg/{BIG.filename}"

        def whole() -> None:
            results.append(httpx.get(url, timeout=30).content == BIG.content)

        def end() -> None:
            response = httpx.get(url, headers={"Range": f"bytes={BIG.size - 100}-"}, timeout=30)
            results.append(response.content == tail)

        def ranges_asked() -> int:
            return sum(1 for r in world.mirror.requests if "range" in r.headers)

        threads = [in_thread(whole)]
        wait_for(lambda: world.mirror.count("/packages/") == 1)
        threads += [in_thread(end) for _ in range(8)]
        wait_for(lambda: ranges_asked() >= 2)
        time.sleep(0.5)
        assert ranges_asked() == 2  # the other six wait for the download
        gate.set()
        for thread in threads:
            thread.join(timeout=30)
    assert results == [True] * 9


def test_a_full_connection_pool_is_no_mirror_failure(world: World) -> None:
    gate = threading.Event()
    world.mirror.file_faults.gate = gate
    one_connection = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))
    with serve(create_app(world.config(), transport=one_connection)) as base:
        assert httpx.get(f"{base}/simple/bigpkg/", timeout=10).status_code == 200
        download = in_thread(lambda: httpx.get(f"{base}/files/bigpkg/{BIG.filename}", timeout=30))
        wait_for(lambda: world.mirror.count("/packages/") == 1)  # holding the one connection
        busy = httpx.get(f"{base}/simple/tinylib/", timeout=20)
        assert busy.status_code == 503 and "busy" in busy.text
        (mirror,) = httpx.get(f"{base}/-/health", timeout=10).json()["upstreams"]["pypi"]
        assert (mirror["state"], mirror["consecutive_failures"]) == ("closed", 0)
        gate.set()
        download.join(timeout=30)
        assert httpx.get(f"{base}/simple/tinylib/", timeout=10).status_code == 200


def test_the_header_deadline_holds_after_an_answer_that_came_before_its_request_ended(
    world: World, tmp_path: Path
) -> None:
    """A 405 goes out while the POST's body is still coming; the next request on the
    connection has the header deadline all the same."""
    config = world.settings(timeouts={"client_header": "1s"})
    with proxy_process(config, tmp_path) as (_, base):
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /simple/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
            time.sleep(1.5)  # answered (405) meanwhile; the body not sent yet
            sock.sendall(b"body" + b"GET /simple/ HTTP/1.1\r\n")
            assert dribbled_and_cut(sock, 12)  # the next request's headers
