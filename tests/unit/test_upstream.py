"""Asking upstreams, in process: mirrors tried in order, failures passed over and counted
against their mirror (whose circuit opens), "no such project" only when every mirror says so,
flat listings read once per TTL, files found on every mirror's own page. The network is an
`httpx.MockTransport`; the circuit's clock is injected."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from support.mock_net import file_response, streamed

from proxy.core.config import Config
from proxy.core.config_yaml import parse_config
from proxy.core.health import MirrorHealth, State
from proxy.core.model import FileLink, FileOrigin, NormalizedName, ProjectPage
from proxy.server.conda_download import WholeDownloads
from proxy.server.errors import NotFoundUpstream, UpstreamError
from proxy.server.upstream import UpstreamClient

pytestmark = pytest.mark.anyio
NAME = NormalizedName("demo")
SHA = "ab" * 32
Answer = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Net:
    """The upstreams' answers by URL (anything else: 404), and every request made."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[httpx.Request] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.get(str(request.url), status(404))
        response = answer(request)
        return await response if isinstance(response, Awaitable) else response

    def hosts(self) -> list[str]:
        return [r.url.host for r in self.requests]


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def project_json(*files: tuple[str, str | None]) -> Answer:
    document = {
        "meta": {"api-version": "1.1"},
        "name": NAME,
        "files": [
            {"filename": name, "url": url, "hashes": {"sha256": sha} if sha else {}}
            for name, url, sha in ((f, f"files/{f}", s) for f, s in files)
        ],
    }
    body = json.dumps(document).encode()
    return lambda _: httpx.Response(200, content=body, headers={"Content-Type": "application/json"})


def status(code: int, **headers: str) -> Answer:
    return lambda _: httpx.Response(code, headers=headers)


def hang(seconds: float) -> Answer:
    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(seconds)
        return httpx.Response(200)

    return answer


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def config(*mirrors: Any, **more: Any) -> Config:
    return parse_config(
        {"upstreams": {"pypi": {"mirrors": list(mirrors)}},
         "timeouts": {"connect": 1, "first_byte": 0.2, "stall": 1}, **more}
    )  # fmt: skip


def client(cfg: Config, net: Net, clock: Clock | None = None) -> UpstreamClient:
    return UpstreamClient(cfg, clock=clock or Clock(), transport=httpx.MockTransport(net.handle))


async def ask(up: UpstreamClient, cfg: Config, name: NormalizedName = NAME) -> ProjectPage | None:
    with anyio.fail_after(5):
        return await up.project_page(cfg.upstreams[0], name)


async def test_a_failing_mirror_is_passed_over_and_its_circuit_opens() -> None:
    net, cfg = Net(), config("https://a.test/simple/", "https://b.test/simple/")
    net.answers["https://a.test/simple/demo/"] = status(503)
    net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    up = client(cfg, net)
    for _ in range(3):
        found = await ask(up, cfg)
        assert found is not None and found.source == "https://b.test/simple/"
    assert net.hosts() == ["a.test", "b.test"] * 3
    a = up.reports()["pypi"][0]
    assert a.state is State.OPEN and a.consecutive_failures == 3 and a.last_error == "HTTP 503"
    await ask(up, cfg)
    assert net.hosts()[-1:] == ["b.test"]  # skipped while its circuit is open
    await up.aclose()


async def test_a_lagging_mirror_s_404_is_not_the_last_word() -> None:
    net, cfg = Net(), config("https://a.test/simple/", "https://b.test/simple/")
    net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    up = client(cfg, net)
    found = await ask(up, cfg)
    assert found is not None and found.file("demo-1.0.tar.gz") is not None
    assert found.file("demo-1.0.tar.gz").url == "https://b.test/simple/demo/files/demo-1.0.tar.gz"  # type: ignore[union-attr]
    assert await ask(up, cfg, NormalizedName("nowhere")) is None  # every mirror: 404
    assert all(r.up and r.consecutive_failures == 0 for r in up.reports()["pypi"])
    await up.aclose()


async def test_the_pytorch_index_s_403_means_no_such_project() -> None:
    net, cfg = Net(), config("https://t.test/whl/cu121/")
    net.answers["https://t.test/whl/cu121/demo/"] = status(403)
    up = client(cfg, net)
    assert await ask(up, cfg) is None
    await up.aclose()


async def test_when_no_mirror_answers_the_error_names_each_one() -> None:
    net, cfg = Net(), config("https://a.test/simple/", "https://b.test/simple/")
    net.answers["https://a.test/simple/demo/"] = refuse
    net.answers["https://b.test/simple/demo/"] = status(500)
    up = client(cfg, net)
    with pytest.raises(UpstreamError) as raised:
        await ask(up, cfg)
    message = str(raised.value)
    assert message.startswith("pypi: demo: https://a.test/simple/: ConnectError")
    assert "https://b.test/simple/: HTTP 500" in message
    await up.aclose()


async def test_a_mirror_that_does_not_answer_in_time_is_skipped_at_once() -> None:
    net, cfg = Net(), config("https://a.test/simple/", "https://b.test/simple/")
    net.answers["https://a.test/simple/demo/"] = hang(5)
    net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    up = client(cfg, net)
    assert await ask(up, cfg) is not None
    a = up.reports()["pypi"][0]
    assert a.state is State.OPEN and a.last_error == "no response within 0.2 s"
    assert await ask(up, cfg) is not None
    assert net.hosts() == ["a.test", "b.test", "b.test"]
    await up.aclose()


async def test_retry_after_keeps_a_mirror_skipped_that_long() -> None:
    net, cfg = Net(), config("https://a.test/simple/")
    net.answers["https://a.test/simple/demo/"] = status(503, **{"Retry-After": "120"})
    clock = Clock()
    up = client(cfg, net, clock)
    with pytest.raises(UpstreamError) as raised:
        await ask(up, cfg)
    assert raised.value.retry_after is not None and 119 <= raised.value.retry_after <= 120
    clock.now = 119
    with pytest.raises(UpstreamError, match="skipped"):
        await ask(up, cfg)
    assert len(net.requests) == 1
    clock.now = 121  # the probe is due: the mirror is asked again
    with pytest.raises(UpstreamError, match="HTTP 503"):
        await ask(up, cfg)
    assert len(net.requests) == 2
    await up.aclose()


async def test_a_page_that_does_not_parse_fails_its_mirror() -> None:
    net, cfg = Net(), config("https://a.test/simple/", "https://b.test/simple/")
    garbled = b'{"meta": {"api-version": "1.1"}, "files": [{'
    net.answers["https://a.test/simple/demo/"] = lambda _: httpx.Response(200, content=garbled)
    net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    up = client(cfg, net)
    found = await ask(up, cfg)
    assert found is not None and found.source == "https://b.test/simple/"
    assert (up.reports()["pypi"][0].last_error or "").startswith("unparseable page")
    await up.aclose()


async def test_the_index_root_must_exist_on_a_mirror() -> None:
    net, cfg = Net(), config("https://a.test/simple/", "https://b.test/simple/")
    root = json.dumps({"meta": {"api-version": "1.1"}, "projects": [{"name": "Demo_Pkg"}]})
    net.answers["https://b.test/simple/"] = lambda _: httpx.Response(200, content=root.encode())
    up = client(cfg, net)
    with anyio.fail_after(5):
        assert await up.project_names(cfg.upstreams[0]) == {"demo-pkg"}
    assert up.reports()["pypi"][0].last_error == "HTTP 404 for the index root"
    await up.aclose()


async def test_a_flat_listing_is_read_once_per_ttl_from_the_clock_s_start() -> None:
    listing = "https://f.test/whl/torch_stable.html"
    body = (
        f'<a href="files/demo-1.0-py3-none-any.whl#sha256={SHA}">d</a>'
        '<a href="files/other-2.0.tar.gz">o</a>'
    ).encode()
    net = Net()
    net.answers[listing] = lambda _: httpx.Response(200, content=body)
    cfg = config({"url": listing, "kind": "flat"}, cache={"page_ttl": 600})
    clock = Clock(0.0)  # a machine up for less than the TTL: nothing is fresh before a fetch
    up = client(cfg, net, clock)
    demo = await ask(up, cfg)
    other = await ask(up, cfg, NormalizedName("other"))
    assert demo is not None and demo.source == listing and demo.files[0].sha256 == SHA
    assert other is not None and await ask(up, cfg, NormalizedName("nope")) is None
    assert len(net.requests) == 1
    clock.now = 601
    await ask(up, cfg)
    assert len(net.requests) == 2
    await up.aclose()


def origin(cfg: Config, page: ProjectPage, filename: str) -> FileOrigin:
    link = page.file(filename)
    assert link is not None
    return FileOrigin(cfg.upstreams[0], page, link)


async def sources(up: UpstreamClient, where: FileOrigin) -> list[str]:
    with anyio.fail_after(5):
        return [url async for _, url in up.file_sources(where)]


async def test_a_file_is_fetched_from_the_mirror_that_listed_it_then_from_the_others() -> None:
    net = Net()
    cfg = config("https://a.test/simple/", "https://b.test/simple/", "https://c.test/simple/")
    wheel = "demo-1.0-py3-none-any.whl"
    net.answers["https://b.test/simple/demo/"] = project_json((wheel, SHA))
    net.answers["https://c.test/simple/demo/"] = project_json((wheel, "cd" * 32))  # other bytes
    up = client(cfg, net)
    listed = ProjectPage(
        NAME, (FileLink(wheel, f"https://a.test/x/{wheel}", sha256=SHA),), "https://a.test/simple/"
    )
    assert await sources(up, origin(cfg, listed, wheel)) == [
        f"https://a.test/x/{wheel}",
        f"https://b.test/simple/demo/files/{wheel}",
    ]
    await up.aclose()


def file_answer(data: bytes, ranges: bool = True, headers: dict[str, str] | None = None) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        response = file_response(request, data, ranges=ranges)
        response.headers.update(headers or {})
        return response

    return answer


async def test_opening_a_file_from_an_offset() -> None:
    data = bytes(range(256)) * 4
    net, cfg = Net(), config("https://a.test/simple/")
    net.answers["https://a.test/f/ranged"] = file_answer(data, headers={"ETag": '"v1"'})
    net.answers["https://a.test/f/whole"] = file_answer(data, ranges=False)
    net.answers["https://a.test/f/gzipped"] = file_answer(
        data, headers={"Content-Encoding": "gzip"}
    )
    up = client(cfg, net)
    mirror = up.mirrors.of(cfg.upstreams[0])[0]
    with anyio.fail_after(5):
        async with up.open_file(mirror, "https://a.test/f/ranged", offset=1000) as body:
            assert (body.start, body.total, body.partial, body.validator) == (
                1000,
                1024,
                True,
                '"v1"',
            )
            assert b"".join([c async for c in body.chunks]) == data[1000:]
        async with up.open_file(mirror, "https://a.test/f/whole", offset=1000) as body:
            assert (body.start, body.total, body.partial) == (0, 1024, False)  # skip the start
        with pytest.raises(UpstreamError, match="unexpected Content-Encoding"):
            async with up.open_file(mirror, "https://a.test/f/gzipped"):
                pass
        with pytest.raises(NotFoundUpstream):
            async with up.open_file(mirror, "https://a.test/f/missing"):
                pass
    assert net.requests[0].headers["range"] == "bytes=1000-"
    await up.aclose()


async def test_a_range_and_a_passthrough_from_the_first_mirror_that_serves_them() -> None:
    data = bytes(range(256)) * 4
    net, cfg = Net(), config("https://a.test/simple/", "https://b.test/simple/")
    net.answers["https://a.test/x/demo-1.0.tar.gz"] = file_answer(data, ranges=False)
    net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    net.answers["https://b.test/simple/demo/files/demo-1.0.tar.gz"] = file_answer(data)
    up = client(cfg, net)
    listed = ProjectPage(
        NAME,
        (FileLink("demo-1.0.tar.gz", "https://a.test/x/demo-1.0.tar.gz", SHA),),
        "https://a.test/simple/",
    )
    where = origin(cfg, listed, "demo-1.0.tar.gz")
    with anyio.fail_after(5):
        assert await up.read_range(where, "bytes=-24") == (1000, data[-24:], 1024)
        part = await up.passthrough(where, 10, 20)  # a mirror without ranges will not do
        assert part is not None and b"".join([c async for c in part.chunks]) == data[10:20]
        await part.close()
        whole = await up.passthrough(where)
        assert whole is not None and b"".join([c async for c in whole.chunks]) == data
        await whole.close()
    await up.aclose()


LOGIN_PAGE = b"""<!DOCTYPE html><html><head><title>Sign in to the campus network</title></head>
<body><form action="/login" method="post"><input name="user"><input name="password"></form>
<a href="/help">Help</a></body></html>"""


@pytest.mark.parametrize(
    "body",
    [
        LOGIN_PAGE,  # a captive portal's 200
        b"[" * 100_000 + b"]" * 100_000,  # nesting deep enough to break json
        b'{"meta": {"api-version": "1.1"}, "files": {"url": "demo-1.0.tar.gz"}}',
        b"<![" * 10_000,  # broke HTMLParser with an AssertionError
    ],
    ids=["login page", "deep nesting", "files not a list", "marked sections"],
)
async def test_a_body_that_is_no_index_page_fails_over_and_is_not_taken(body: bytes) -> None:
    net, cfg = Net(), config("https://a.test/simple/", "https://b.test/simple/")
    net.answers["https://a.test/simple/demo/"] = lambda _: httpx.Response(200, content=body)
    net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    up = client(cfg, net)
    with anyio.fail_after(5):
        found = await ask(up, cfg)
    assert found is not None and found.source == "https://b.test/simple/"
    assert (up.reports()["pypi"][0].last_error or "").startswith("unparseable page")
    await up.aclose()


def dripping(chunk: bytes, every: float) -> Answer:
    """A 200 whose body never ends: a chunk now and then, each within the stall timeout."""

    async def body() -> AsyncIterator[bytes]:
        while True:
            yield chunk
            await asyncio.sleep(every)

    return lambda _: httpx.Response(200, content=body())


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (dripping(b" " * 100, 0.1), "body not complete within 0.5 s"),
        (lambda _: httpx.Response(200, content=b" " * 3_000_000), "body larger than 2,000,000"),
        (project_json(*((f"demo-{n}.tar.gz", None) for n in range(20))), "more than the 10"),
    ],
    ids=["dripped", "too large", "too many links"],
)
async def test_a_page_beyond_its_bounds_fails_over(answer: Answer, problem: str) -> None:
    limits = {"page_size": "2MB", "page_links": 10}
    net = Net()
    cfg = config("https://a.test/simple/", "https://b.test/simple/", limits=limits)
    cfg = dataclasses.replace(cfg, page_deadline=0.5)
    net.answers["https://a.test/simple/demo/"] = answer
    net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    up = client(cfg, net)
    found = await ask(up, cfg)
    assert found is not None and found.source == "https://b.test/simple/"
    assert problem in (up.reports()["pypi"][0].last_error or "")
    await up.aclose()


async def test_a_mirror_that_hangs_costs_one_hedge_delay_not_a_timeout() -> None:
    net = Net()
    cfg = config("https://a.test/simple/", "https://b.test/simple/",
                 timeouts={"connect": 1, "first_byte": 30, "stall": 30})  # fmt: skip
    net.answers["https://a.test/simple/demo/"] = hang(30)
    net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    up = UpstreamClient(cfg, clock=time.monotonic, transport=httpx.MockTransport(net.handle))
    started = time.monotonic()
    found = await ask(up, cfg)
    took = time.monotonic() - started
    assert found is not None and found.source == "https://b.test/simple/"
    assert 0.9 < took < 3  # a cold mirror is waited for about a second
    a, b = up.reports()["pypi"]
    assert a.consecutive_failures == 1 and "another mirror answered first" in (a.last_error or "")
    assert b.up and b.consecutive_failures == 0
    await up.aclose()


async def test_a_slow_but_steady_mirror_is_not_hedged() -> None:
    net = Net()
    cfg = config("https://a.test/simple/", "https://b.test/simple/",
                 timeouts={"connect": 1, "first_byte": 30, "stall": 30},
                 mirrors={"order": "configured"})  # fmt: skip
    clock = Clock()
    net.answers["https://a.test/simple/demo/"] = slowly(clock, 3.0, ("demo-1.0.tar.gz", SHA))
    net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    up = client(cfg, net, clock)
    for _ in range(8):
        found = await ask(up, cfg)
        assert found is not None and found.source == "https://a.test/simple/"
    assert "b.test" not in net.hosts()  # 0.15 s each, never past its hedge delay
    assert up.reports()["pypi"][0].hedge_after_ms == 2000  # 1.5 x 3 s, at most the ceiling
    await up.aclose()


def slowly(clock: Clock, seconds: float, *files: tuple[str, str | None]) -> Answer:
    """A project page that takes `seconds` on `clock` (which times the mirror's answers)
    and a twentieth of that in fact: a loaded machine cannot make it late."""
    answer = project_json(*files)

    async def slow(request: httpx.Request) -> httpx.Response:
        clock.now += seconds
        await asyncio.sleep(seconds / 20)
        response = answer(request)
        return await response if isinstance(response, Awaitable) else response

    return slow


async def test_a_clearly_faster_mirror_is_preferred_unless_the_order_is_fixed() -> None:
    for order, expected in (("measured", "b.test"), ("configured", "a.test")):
        net = Net()
        cfg = config("https://a.test/simple/", "https://b.test/simple/",
                     timeouts={"connect": 1, "first_byte": 30, "stall": 30},
                     mirrors={"order": order})  # fmt: skip
        clock = Clock()
        net.answers["https://a.test/simple/demo/"] = slowly(clock, 0.3, ("demo-1.0.tar.gz", SHA))
        net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
        up = client(cfg, net, clock)
        await ask(up, cfg)  # a, the first configured, is measured: 0.3 s
        await ask(up, cfg)  # measured order: b, not measured yet, is tried; it is fast
        net.requests.clear()
        for _ in range(3):
            await ask(up, cfg)
        assert net.hosts() == [expected] * 3
        await up.aclose()


async def test_a_mirror_asked_as_a_hedge_is_not_counted_when_the_first_answers() -> None:
    net = Net()
    cfg = config("https://a.test/simple/", "https://b.test/simple/",
                 timeouts={"connect": 1, "first_byte": 30, "stall": 30})  # fmt: skip
    net.answers["https://a.test/simple/demo/"] = slowly(Clock(), 24, ("demo-1.0.tar.gz", SHA))
    net.answers["https://b.test/simple/demo/"] = hang(30)  # asked at 1 s; a answers at 1.2 s
    up = UpstreamClient(cfg, clock=time.monotonic, transport=httpx.MockTransport(net.handle))
    found = await ask(up, cfg)
    assert found is not None and found.source == "https://a.test/simple/"
    assert "b.test" in net.hosts()
    assert [r.consecutive_failures for r in up.reports()["pypi"]] == [0, 0]
    await up.aclose()


async def test_a_mirror_whose_headers_are_in_is_not_hedged_while_its_body_comes() -> None:
    net = Net()
    cfg = config("https://a.test/simple/", "https://b.test/simple/",
                 timeouts={"connect": 1, "first_byte": 30, "stall": 30})  # fmt: skip
    page = b'{"meta": {"api-version": "1.1"}, "files": []}'

    async def slow_body() -> AsyncIterator[bytes]:
        yield page[:10]
        await asyncio.sleep(1.5)  # past the cold hedge delay
        yield page[10:]

    net.answers["https://a.test/simple/demo/"] = lambda _: httpx.Response(200, content=slow_body())
    net.answers["https://b.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    up = client(cfg, net)
    found = await ask(up, cfg)
    assert found is not None and found.source == "https://a.test/simple/"
    assert "b.test" not in net.hosts()
    await up.aclose()


async def test_an_open_mirror_s_probe_is_claimed_only_when_it_is_asked() -> None:
    net, clock = Net(), Clock()
    cfg = config("https://a.test/simple/", "https://b.test/simple/")
    net.answers["https://a.test/simple/demo/"] = project_json(("demo-1.0.tar.gz", SHA))
    up = client(cfg, net, clock)
    _, b = up.mirrors.of(cfg.upstreams[0])
    up.mirrors.failed(b, "down", severe=True)  # open, its probe due at once below
    clock.now = b.next_probe
    await ask(up, cfg)  # a answers at once: b is never asked
    assert up.mirrors.could_use(b) and b.next_probe == clock.now  # its probe still due
    await up.aclose()


async def test_a_mirror_is_asked_for_a_few_pages_at_a_time_the_rest_wait_their_turn() -> None:
    """Past a few at once the HTTP client's pool costs more CPU per request: the proxy keeps
    to `limits.mirror_requests` per mirror; the others wait, none is refused."""
    net, under_way, most = Net(), 0, 0

    async def page(request: httpx.Request) -> httpx.Response:
        nonlocal under_way, most
        under_way += 1
        most = max(most, under_way)
        await asyncio.sleep(0.02)
        under_way -= 1
        return project_json(("demo-1.0.tar.gz", SHA))(request)  # type: ignore[return-value]

    cfg = config("https://a.test/simple/", limits={"mirror_requests": 3})
    names = [NormalizedName(f"p{i}") for i in range(12)]
    for name in names:
        net.answers[f"https://a.test/simple/{name}/"] = page
    up = client(cfg, net)
    with anyio.fail_after(5):
        pages = await asyncio.gather(*(up.project_page(cfg.upstreams[0], n) for n in names))
    assert all(p is not None for p in pages) and most == 3
    await up.aclose()


async def test_waiting_for_a_body_after_its_headers_does_not_spin_the_event_loop() -> None:
    """Once an answer's headers are in, the hedge waits on the attempt alone: its body may
    take seconds (a big page, a conda repodata), and the event loop has other work."""
    from proxy.server.hedging import Hedged, headers_arrived
    from proxy.server.metrics import Metrics
    from proxy.server.mirrors import Mirrors

    config = parse_config({"upstreams": {"pypi": {"mirrors": ["http://a/", "http://b/"]}}})
    mirrors = Mirrors(config, Metrics())

    async def ask(mirror: MirrorHealth) -> str:
        headers_arrived()
        await asyncio.sleep(0.3)  # the body arriving
        return mirror.url

    hedged = Hedged(mirrors.of(config.upstreams[0]), ask, mirrors, Metrics())
    rounds = 0
    collect = hedged._collect

    def counted() -> str | None:
        nonlocal rounds
        rounds += 1
        return collect()

    hedged._collect = counted  # type: ignore[method-assign]
    with anyio.fail_after(5):
        assert await hedged.answer("page") == "http://a/"
    assert rounds <= 3


async def test_a_downloaded_body_is_decoded_unless_it_is_kept_as_sent(tmp_path: Path) -> None:
    """JSON may come gzip-encoded and is decoded; a compressed file is asked as identity, and
    a mirror that encodes it anyway has failed (its bytes would not be the file's)."""
    conda = {"upstreams": {"c": {"mirrors": ["http://m/", "http://n/"]}}}
    cfg, net = config("http://a/simple/", conda=conda), Net()
    group, body, gzipped = cfg.conda_upstreams[0], b'{"info": {}}', {"Content-Encoding": "gzip"}

    def answer(data: bytes, **headers: str) -> Answer:
        return lambda _: httpx.Response(200, content=streamed(data), headers=headers)

    net.answers["http://m/x.json"] = answer(gzip.compress(body), **gzipped)
    net.answers["http://m/x.zst"] = answer(gzip.compress(body), **gzipped)
    net.answers["http://n/x.zst"] = answer(b"zstd bytes")
    up = client(cfg, net)
    downloads = WholeDownloads(up, 2**20)

    async def kept(part: Path, url: str) -> bytes:
        return part.read_bytes()

    identity = {"Accept-Encoding": "identity"}
    for name, headers, expected in [("x.json", {}, body), ("x.zst", identity, b"zstd bytes")]:
        with anyio.fail_after(5):
            got = await downloads.get(group, partial(_joined, name), tmp_path / name, headers, kept)
        assert got is not None and got.ready == expected
    assert net.requests[1].headers["accept-encoding"] == "identity"
    assert up.mirrors.of(group)[0].failures == 1


def _joined(name: str, mirror: str) -> str:
    return mirror + name
