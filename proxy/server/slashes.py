"""Paths with a doubled slash: pipenv asks for `/simple//attrs/` when the index URL it is given
ends in `/`. They are redirected to the path with single slashes rather than answered where
they are, since a page's relative links (`../../files/...`) would resolve wrongly from there."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

_RUNS = re.compile(rb"//+")


class SlashesMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "//" not in scope["path"]:
            await self.app(scope, receive, send)
            return
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        location = _RUNS.sub(b"/", raw)
        if scope.get("query_string"):
            location += b"?" + scope["query_string"]
        headers = [(b"location", location), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 301, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
