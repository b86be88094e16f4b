"""The one place httpx's errors become ours: what a request that got no usable answer says,
and whether it was a timeout (which opens a mirror's circuit at once)."""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest

from proxy.core.config_yaml import parse_config
from proxy.server.http_client import RequestFailed, build_http_client, send

pytestmark = pytest.mark.anyio
CONFIG = parse_config({"upstreams": {"pypi": {"mirrors": ["https://m.test/simple/"]}}})


async def failure(handler: httpx.MockTransport, url: str = "https://m.test/x") -> RequestFailed:
    async with build_http_client(CONFIG, transport=handler) as http:
        with anyio.fail_after(5), pytest.raises(RequestFailed) as raised:
            await send(http, url, {}, first_byte_timeout=0.2)
    return raised.value


async def test_a_refused_connection_is_a_failure_but_not_a_timeout() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    failed = await failure(httpx.MockTransport(refuse))
    assert str(failed) == "ConnectError: connection refused" and not failed.timeout


async def test_timeouts_are_timeouts() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    assert (await failure(httpx.MockTransport(slow))).timeout

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    failed = await failure(httpx.MockTransport(hang))
    assert str(failed) == "no response within 0.2 s" and failed.timeout


async def test_a_url_httpx_cannot_read_is_a_failure_too() -> None:
    # A config may name a mirror like this, and a mirror may redirect to one.
    failed = await failure(httpx.MockTransport(lambda r: httpx.Response(200)), "https://x:abc/")
    assert str(failed).startswith("InvalidURL") and not failed.timeout
