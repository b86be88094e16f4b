"""A deadline for clients, as nginx's `send_timeout`: a client must take each piece of an
answer within `client_send_timeout`. One that stops reading is cut off, so it holds no
connection, file or upstream download open for long. (The deadline for request headers is
the protocol's, see `http_protocol`; so is the one for files sent with `sendfile`.)"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .responses import BodyCut


class SendDeadlineMiddleware:
    """Ends an answer whose client has not taken a piece of it within `timeout` seconds."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app, self.timeout = app, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_in_time(message: Message) -> None:
            if message["type"] == "http.response.pathsend":  # timed by the protocol, piecewise
                await send(message)
                return
            try:
                with anyio.fail_after(self.timeout):
                    await send(message)
            except TimeoutError:
                raise BodyCut(f"the client took nothing for {self.timeout:g} s") from None

        await self.app(scope, receive, send_in_time)
