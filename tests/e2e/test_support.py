"""Tests for the test-support package: real pip and uv install its wheels, and the fake
upstream and the server runner do what they say."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import httpx
import pytest
from starlette.applications import Starlette
from support.repo import OFFICIAL_INDEX
from support.servers import serve
from support.upstream import ACCESS_DENIED, JSON_V1, FakeUpstream, Style
from support.wheels import make_wheel

PYTHON = sys.executable
FIXTURES = OFFICIAL_INDEX
ACCEPT_JSON = {"accept": JSON_V1}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def anchors(page: str) -> list[dict[str, str | None]]:
    parser = _Anchors()
    parser.feed(page)
    return parser.anchors


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    # One client for the module: a fresh client per request costs ~20 ms of TLS setup.
    with httpx.Client() as client:
        yield client


@pytest.fixture
def clean_env() -> dict[str, str]:
    """Environment for pip/uv: no inherited PIP_*/UV_* settings, no config files, no proxy."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_"))
        and k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    env.update(PIP_CONFIG_FILE="/dev/null", UV_NO_CONFIG="1")
    return env


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result


def pip_install(env: dict[str, str], target: Path, *args: str) -> None:
    pip = [PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "--no-cache-dir"]
    run([*pip, "--target", str(target), *args], env)


def uv_venv(env: dict[str, str], tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    cache = ["--cache-dir", str(tmp_path / "uv-cache")]
    run([PYTHON, "-m", "uv", "venv", "-q", *cache, "--python", PYTHON, str(venv)], env)
    return venv / "bin" / "python"


def uv_install(env: dict[str, str], tmp_path: Path, python: Path, *args: str) -> None:
    cache = ["--cache-dir", str(tmp_path / "uv-cache")]
    run([PYTHON, "-m", "uv", "pip", "install", *cache, "--python", str(python), *args], env)


def versions_in(python: str | Path, *modules: str, path: Path | None = None) -> list[str]:
    """``__version__`` of each module as imported by ``python`` (``path`` added to sys.path)."""
    code = (
        "import sys, importlib\n"
        "print(*(importlib.import_module(m).__version__ for m in sys.argv[1:]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    out = subprocess.run(
        [str(python), "-c", code, *modules], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


# -- wheels ----------------------------------------------------------------------------------------


@pytest.fixture
def wheel_dir(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for dist in (
        make_wheel("app", "1.0", requires=["dep>=1.5", "torchish==2.3.1"]),
        make_wheel("dep", "1.0"),
        make_wheel("dep", "1.5", requires_python=">=3.8"),
        make_wheel("torchish", "2.3.1+cu121", payload_size=50_000),
    ):
        (wheels / dist.filename).write_bytes(dist.content)
    return wheels


def test_pip_installs_wheels(wheel_dir: Path, tmp_path: Path, clean_env: dict[str, str]) -> None:
    target = tmp_path / "target"
    pip_install(clean_env, target, "--no-index", "--find-links", str(wheel_dir), "app")
    # "torchish==2.3.1" accepted the local version 2.3.1+cu121 (PEP 440 local matching).
    assert versions_in(PYTHON, "app", "dep", "torchish", path=target) == [
        "1.0",
        "1.5",
        "2.3.1+cu121",
    ]


def test_uv_installs_wheels(wheel_dir: Path, tmp_path: Path, clean_env: dict[str, str]) -> None:
    python = uv_venv(clean_env, tmp_path)
    uv_install(clean_env, tmp_path, python, "--no-index", "--find-links", str(wheel_dir), "app")
    assert versions_in(python, "app", "dep", "torchish") == ["1.0", "1.5", "2.3.1+cu121"]


# -- fake upstream: content ------------------------------------------------------------------------

FOO_1 = make_wheel("foo", "1.0", requires=["dep"], requires_python=">=3.8")
FOO_2 = make_wheel("foo", "2.0")
FOO_3 = make_wheel("foo", "3.0", requires_python=">=4")
DEP = make_wheel("dep", "1.0")
TORCHISH = make_wheel("torchish", "2.3.1+cu121", payload_size=10_000)
BIG = make_wheel("big", "1.0", payload_size=300_000)  # several 64 KiB chunks


def fill(up: FakeUpstream) -> None:
    up.add(FOO_1, metadata=True, upload_time="2024-01-02T03:04:05.000000Z")
    up.add(FOO_2, yanked="broken build")
    up.add(FOO_3)
    up.add(DEP, yanked=True)
    up.add(TORCHISH)
    up.add(BIG)


def _running(style: Style) -> Iterator[tuple[FakeUpstream, str]]:
    up = FakeUpstream(style)
    fill(up)
    with up.running() as base:
        yield up, base


# One server per style for the module (each start/stop costs ~0.2 s); tests get it reset.
@pytest.fixture(scope="module")
def mirror_server() -> Iterator[tuple[FakeUpstream, str]]:
    yield from _running("mirror")


@pytest.fixture(scope="module")
def pytorch_server() -> Iterator[tuple[FakeUpstream, str]]:
    yield from _running("pytorch")


@pytest.fixture
def mirror(mirror_server: tuple[FakeUpstream, str]) -> tuple[FakeUpstream, str]:
    mirror_server[0].reset_faults()
    mirror_server[0].reset_log()
    return mirror_server


@pytest.fixture
def pytorch(pytorch_server: tuple[FakeUpstream, str]) -> tuple[FakeUpstream, str]:
    pytorch_server[0].reset_faults()
    pytorch_server[0].reset_log()
    return pytorch_server


def test_mirror_html(http: httpx.Client, mirror: tuple[FakeUpstream, str]) -> None:
    up, base = mirror
    root = http.get(up.root_url(base))
    assert root.status_code == 200 and root.headers["content-type"] == "text/html"
    assert {a["href"] for a in anchors(root.text)} >= {"foo/", "dep/", "torchish/"}

    page_url = up.page_url(base, "foo")
    page = http.get(page_url)
    assert page.headers["vary"] == "Accept"
    assert 'data-requires-python="&gt;=3.8"' in page.text
    links = {a["href"]: a for a in anchors(page.text)}
    assert len(links) == 3
    for href, attrs in links.items():
        assert href is not None and href.startswith("../../packages/")
        url, fragment = urldefrag(urljoin(page_url, href))
        assert url.startswith(f"{base}/packages/")
        body = http.get(url).content
        assert fragment == f"sha256={sha256(body)}"
        if body == FOO_1.content:
            assert attrs["data-requires-python"] == ">=3.8"
            assert attrs["data-core-metadata"] == f"sha256={FOO_1.metadata_sha256}"
            assert attrs["data-dist-info-metadata"] == attrs["data-core-metadata"]
            assert http.get(url + ".metadata").content == FOO_1.metadata
        else:
            assert "data-core-metadata" not in attrs
            assert http.get(url + ".metadata").status_code == 404
    yanked = {a.get("data-yanked") for a in links.values()}
    assert yanked == {None, "broken build"}
    assert 'data-yanked=""' in http.get(up.page_url(base, "dep")).text


def test_mirror_json(http: httpx.Client, mirror: tuple[FakeUpstream, str]) -> None:
    up, base = mirror
    root = http.get(up.root_url(base), headers=ACCEPT_JSON)
    assert root.headers["content-type"] == JSON_V1
    assert {"name": "foo"} in root.json()["projects"]
    assert root.json()["meta"] == {"api-version": "1.1"}

    page_url = up.page_url(base, "foo")
    page = http.get(page_url, headers=ACCEPT_JSON)
    doc = page.json()
    assert page.headers["content-type"] == JSON_V1
    assert doc["meta"]["api-version"] == "1.1" and doc["name"] == "foo"
    assert doc["versions"] == ["1.0", "2.0", "3.0"]
    files = {f["filename"]: f for f in doc["files"]}
    first = files[FOO_1.filename]
    assert first["requires-python"] == ">=3.8" and first["size"] == FOO_1.size
    assert first["upload-time"] == "2024-01-02T03:04:05.000000Z"
    assert first["core-metadata"] == {"sha256": FOO_1.metadata_sha256}
    assert files[FOO_2.filename]["yanked"] == "broken build"
    assert files[FOO_3.filename]["yanked"] is False and "core-metadata" not in files[FOO_3.filename]
    for f in doc["files"]:
        assert f["url"].startswith("../../packages/")
        body = http.get(urljoin(page_url, f["url"])).content
        assert sha256(body) == f["hashes"]["sha256"]

    # pip's Accept header: JSON preferred; an HTML-only Accept gets the v1 HTML type.
    pip_accept = f"{JSON_V1}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
    assert http.get(page_url, headers={"accept": pip_accept}).json()["name"] == "foo"
    html_v1 = "application/vnd.pypi.simple.v1+html"
    assert http.get(page_url, headers={"accept": html_v1}).headers["content-type"] == html_v1

    up.json_content_type = "application/octet-stream"
    odd = http.get(page_url, headers=ACCEPT_JSON)
    assert odd.headers["content-type"] == "application/octet-stream"
    assert json.loads(odd.content) == doc


def test_mirror_not_found_and_redirects(
    http: httpx.Client, mirror: tuple[FakeUpstream, str]
) -> None:
    _, base = mirror
    assert http.get(f"{base}/simple/nope/").status_code == 404
    assert http.get(f"{base}/packages/00/00/0000/nope.whl").status_code == 404
    for path in ("/simple/Foo/", "/simple/foo"):
        moved = http.get(base + path)
        assert (moved.status_code, moved.headers["location"]) == (301, "/simple/foo/")
    assert http.get(f"{base}/simple").headers["location"] == "/simple/"
    assert http.get(base + "/simple/Foo", follow_redirects=True).status_code == 200


def test_mirror_with_deeper_prefix(http: httpx.Client) -> None:
    up = FakeUpstream(prefix="/pypi/simple/")
    up.add(FOO_2)
    with up.running() as base:
        page_url = up.page_url(base, "foo")
        assert page_url == f"{base}/pypi/simple/foo/"
        (link,) = anchors(http.get(page_url).text)
        url = urljoin(page_url, link["href"])
        assert url.startswith(f"{base}/pypi/packages/")
        assert http.get(url).content == FOO_2.content


def test_pytorch_style(http: httpx.Client, pytorch: tuple[FakeUpstream, str]) -> None:
    up, base = pytorch
    root = http.get(up.root_url(base), headers=ACCEPT_JSON)
    assert root.headers["content-type"] == "text/html"
    assert {"href": "/whl/cu121/torchish/"} in anchors(root.text)

    page_url = up.page_url(base, "torchish")
    page = http.get(page_url, headers=ACCEPT_JSON)  # HTML whatever is asked for
    assert page.headers["content-type"] == "text/html"
    (link,) = anchors(page.text)
    href = "/whl/cu121/torchish-2.3.1%2Bcu121-py3-none-any.whl"
    assert link["href"] == f"{href}#sha256={TORCHISH.sha256}"
    assert urljoin(page_url, href) == base + href
    assert http.get(base + href).content == TORCHISH.content
    assert http.get(f"{base}/whl/cu121/{TORCHISH.filename}").content == TORCHISH.content
    assert up.file_url(base, TORCHISH.filename) == base + href

    for missing in ("/whl/cu121/nope/", "/whl/cu121/nope-1.0-py3-none-any.whl", "/other"):
        denied = http.get(base + missing)
        assert denied.status_code == 403, missing
        assert denied.headers["content-type"] == "application/xml"
        assert denied.content == ACCESS_DENIED
        assert b"<Code>AccessDenied</Code>" in denied.content


@pytest.mark.parametrize("style", ["mirror", "pytorch"])
def test_pip_and_uv_install_from_fake_upstream(
    style: Style, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    up = FakeUpstream(style)
    fill(up)
    up.add(make_wheel("dep", "0.9"))
    with up.running() as base:
        index = ["--index-url", up.root_url(base)]
        # foo 3.0 needs Python >= 4 and 2.0 is yanked, so 1.0 it is; dep 1.0 is yanked too.
        pip_install(clean_env, tmp_path / "t", *index, "foo", "torchish")
        expected = ["1.0", "0.9", "2.3.1+cu121"]
        assert versions_in(PYTHON, "foo", "dep", "torchish", path=tmp_path / "t") == expected
        python = uv_venv(clean_env, tmp_path)
        uv_install(clean_env, tmp_path, python, *index, "foo", "torchish")
        assert versions_in(python, "foo", "dep", "torchish") == expected
    # pip and uv each read foo 1.0's advertised metadata (the other wheels have none).
    assert up.count(f"{FOO_1.filename}.metadata") == 2


def test_raw_pages_from_recordings(http: httpx.Client) -> None:
    up = FakeUpstream()
    up.add_raw_page("attrs", (FIXTURES / "attrs.html").read_bytes(), "text/html")
    up.add_raw_page("attrs", (FIXTURES / "attrs.json").read_bytes(), JSON_V1)
    recorded = json.loads((FIXTURES / "attrs.json").read_bytes())
    first = recorded["files"][0]
    up.add_blob(first["url"], b"not really attrs")
    with up.running() as base:
        page_url = up.page_url(base, "attrs")
        assert http.get(page_url, headers=ACCEPT_JSON).json() == recorded
        html_page = http.get(page_url)
        assert html_page.content == (FIXTURES / "attrs.html").read_bytes()
        assert html_page.headers["content-type"] == "text/html"
        assert http.get(urljoin(page_url, first["url"])).content == b"not really attrs"
        assert "attrs/" in http.get(up.root_url(base)).text


# -- fake upstream: faults -------------------------------------------------------------------------


def test_status_fault_with_retry_after(
    http: httpx.Client, mirror: tuple[FakeUpstream, str]
) -> None:
    up, base = mirror
    up.file_faults.status, up.file_faults.retry_after = 503, 7
    failed = http.get(up.file_url(base, FOO_1.filename))
    assert (failed.status_code, failed.headers["retry-after"]) == (503, "7")
    assert http.get(up.page_url(base, "foo")).status_code == 200  # pages unaffected
    up.page_faults.status = 429
    assert http.get(up.page_url(base, "nope")).status_code == 429  # even unknown projects
    assert "retry-after" not in http.get(up.page_url(base, "foo")).headers
    up.file_faults.status = up.page_faults.status = None
    assert http.get(up.file_url(base, FOO_1.filename)).content == FOO_1.content


def test_hang_until_timeout_or_switched_off(
    http: httpx.Client, mirror: tuple[FakeUpstream, str]
) -> None:
    up, base = mirror
    up.page_faults.hang = True
    with pytest.raises(httpx.ReadTimeout):
        http.get(up.page_url(base, "foo"), timeout=0.2)
    assert up.count("/simple/foo/") == 1  # logged although never answered

    answers: list[int] = []
    waiter = threading.Thread(
        target=lambda: answers.append(httpx.get(up.page_url(base, "foo"), timeout=10).status_code)
    )
    waiter.start()
    time.sleep(0.2)
    assert answers == []
    up.page_faults.hang = False
    waiter.join(5)
    assert answers == [200]


@pytest.mark.parametrize("use_close", [True, False], ids=["running", "serve"])
def test_hang_does_not_hold_up_shutdown(use_close: bool) -> None:
    """A client still waiting on a hanging request must not keep the server alive for long."""
    up = FakeUpstream()
    up.add(FOO_1)
    up.file_faults.hang = True
    outcome: list[int | Exception] = []

    def fetch(url: str) -> None:
        try:
            outcome.append(httpx.get(url, timeout=30).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    server = up.running() if use_close else serve(up.app, lifespan="auto")
    with server as base:
        client = threading.Thread(target=fetch, args=(up.file_url(base, FOO_1.filename),))
        client.start()
        while not up.requests:
            time.sleep(0.01)
        started = time.monotonic()
    elapsed = time.monotonic() - started
    client.join(5)
    # close() answers 503 at once; plain serve() waits for uvicorn's 2 s graceful timeout,
    # after which uvicorn cancels the request and answers 500 itself.
    assert outcome == [503 if use_close else 500]
    assert elapsed < (1.0 if use_close else 4.0)


def test_drip_slows_the_body(http: httpx.Client, mirror: tuple[FakeUpstream, str]) -> None:
    up, base = mirror
    up.file_faults.drip = 0.1
    started = time.monotonic()
    body = http.get(up.file_url(base, BIG.filename)).content
    assert body == BIG.content
    assert time.monotonic() - started >= 0.1 * (len(BIG.content) // (64 * 1024))


def test_cut_after_gives_an_incomplete_body(
    http: httpx.Client, mirror: tuple[FakeUpstream, str]
) -> None:
    up, base = mirror
    up.file_faults.cut_after = 100_000
    url = up.file_url(base, BIG.filename)
    with http.stream("GET", url) as response:
        assert response.headers["content-length"] == str(BIG.size)
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    (record,) = [r for r in up.requests if r.path.endswith(BIG.filename)]
    assert record.bytes_sent == 100_000
    up.file_faults.cut_after = None
    assert http.get(url).content == BIG.content


def test_corrupt_flips_a_byte(http: httpx.Client, mirror: tuple[FakeUpstream, str]) -> None:
    up, base = mirror
    up.file_faults.corrupt = True
    response = http.get(up.file_url(base, BIG.filename))
    assert len(response.content) == BIG.size
    assert sha256(response.content) != BIG.sha256
    assert response.headers["etag"] == f'"{BIG.sha256}"'  # looks like the real thing
    assert sum(a != b for a, b in zip(response.content, BIG.content, strict=True)) == 1


def test_ranges(http: httpx.Client, mirror: tuple[FakeUpstream, str]) -> None:
    up, base = mirror
    url, size, content = up.file_url(base, BIG.filename), BIG.size, BIG.content

    def get(spec: str) -> httpx.Response:
        return http.get(url, headers={"range": spec})

    full = http.get(url)
    assert (full.status_code, full.headers["accept-ranges"]) == (200, "bytes")
    assert full.headers["content-type"] == "application/octet-stream"
    assert full.headers["content-length"] == str(size)
    cases = {
        "bytes=0-9": (0, 9),
        "bytes=10-": (10, size - 1),
        "bytes=-5": (size - 5, size - 1),
        f"bytes=100-{size + 50}": (100, size - 1),
    }
    for spec, (first, last) in cases.items():
        part = get(spec)
        assert part.status_code == 206, spec
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == content[first : last + 1]
    for spec in (f"bytes={size}-", "bytes=-0"):
        refused = get(spec)
        assert refused.status_code == 416, spec
        assert refused.headers["content-range"] == f"bytes */{size}"
    assert get("bytes=0-1,5-6").status_code == 200  # multiple ranges: whole file

    head = http.head(url)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(size)

    up.file_faults.no_range = True
    ignored = get("bytes=0-9")
    assert (ignored.status_code, ignored.content) == (200, content)
    assert "accept-ranges" not in ignored.headers


def test_missing(
    http: httpx.Client, mirror: tuple[FakeUpstream, str], pytorch: tuple[FakeUpstream, str]
) -> None:
    for up, base in (mirror, pytorch):
        up.file_faults.missing.add(FOO_1.filename)
        up.page_faults.missing.add("dep")
        expected = 404 if up.style == "mirror" else 403
        assert http.get(up.file_url(base, FOO_1.filename)).status_code == expected
        assert http.get(up.file_url(base, FOO_2.filename)).status_code == 200
        assert http.get(up.page_url(base, "dep")).status_code == expected
        assert http.get(up.page_url(base, "foo")).status_code == 200


@pytest.mark.parametrize("event_type", ["threading", "asyncio"])
def test_gate_holds_back_the_rest_of_the_body(
    http: httpx.Client, mirror: tuple[FakeUpstream, str], event_type: str
) -> None:
    up, base = mirror
    gate = threading.Event() if event_type == "threading" else asyncio.Event()
    up.file_faults.gate = gate
    for dist in (BIG, FOO_1):  # several chunks, and a body that fits in one
        up.reset_log()
        received: list[bytes] = []
        with http.stream("GET", up.file_url(base, dist.filename)) as response:
            chunks = response.iter_raw()
            received.append(next(chunks))  # the first chunk arrives before the gate opens
            reader = threading.Thread(target=lambda: received.extend(chunks))  # noqa: B023
            reader.start()
            time.sleep(0.15)
            assert reader.is_alive()
            (record,) = up.requests
            assert 0 < record.bytes_sent < dist.size
            assert sum(map(len, received)) == record.bytes_sent
            gate.set()
            reader.join(5)
        assert b"".join(received) == dist.content
        gate.clear()


# -- request log and servers -----------------------------------------------------------------------


def test_request_log(http: httpx.Client, pytorch: tuple[FakeUpstream, str]) -> None:
    up, base = pytorch
    http.get(up.page_url(base, "torchish"), headers={"x-probe": "1"})
    http.get(up.file_url(base, TORCHISH.filename))
    http.head(f"{base}/whl/cu121/{TORCHISH.filename}")
    page, encoded, raw = up.requests
    assert (page.method, page.path, page.kind) == ("GET", "/whl/cu121/torchish/", "page")
    assert page.status == 200
    assert page.headers["x-probe"] == "1"
    assert encoded.path.endswith("%2Bcu121-py3-none-any.whl")  # raw path, as received
    assert encoded.bytes_sent == TORCHISH.size and raw.bytes_sent == 0
    assert up.count("torchish-2.3.1") == 2
    assert up.count("torchish-2.3.1", method="head") == 1
    assert up.count(lambda r: r.kind == "page") == 1
    up.reset_log()
    assert up.requests == [] and up.count("") == 0


def test_serve_reports_a_failed_startup() -> None:
    @contextlib.asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("boom")
        yield

    started = time.monotonic()
    with (
        pytest.raises(RuntimeError, match="exited before it started"),
        serve(Starlette(lifespan=broken)),
    ):
        pass
    assert time.monotonic() - started < 5
