"""Streamed answers release what they hold however they end: also when the client is gone
before the first chunk, when the body's own `finally` never runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from starlette.types import Message

from proxy.server.responses import streaming

pytestmark = pytest.mark.anyio


async def test_the_body_is_released_when_the_client_left_before_it_began() -> None:
    released: list[str] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"never sent"

    async def receive() -> Message:
        await anyio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise OSError("the client is gone")

    async def close() -> None:
        released.append("upstream response closed")

    response = streaming(body(), 200, {}, close)
    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET"}
    with anyio.fail_after(5), pytest.raises(Exception):  # noqa: B017 (however starlette ends it)
        await response(scope, receive, send)
    assert released == ["upstream response closed"]
