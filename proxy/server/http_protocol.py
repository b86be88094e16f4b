"""uvicorn's HTTP/1.1 protocol with two things it lacks: a deadline for request headers, and
the ASGI `http.response.pathsend` extension, answered with the kernel's `sendfile`.

- A connection must send its request headers within `header_timeout` (counted from when it
  opened or its last answer ended), as nginx's `client_header_timeout`: one that dribbles
  them is closed.
- A cached file (starlette's `FileResponse` sends `pathsend` when the server offers it) goes
  from the page cache to the socket without passing through Python, in pieces each of which
  the client must take within `send_timeout` (else the connection is closed, as a client
  that stops reading is cut off on every other path). Ranges still take the chunked path.

uvicorn has no hook for either (its pathsend pull request is unmerged), so this subclasses
its protocol and gives each request cycle a `send` that knows `pathsend`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial
from typing import Any, cast

import anyio
import h11
from starlette.types import Message
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

log = logging.getLogger("pypi_proxy.files")

PATHSEND = "http.response.pathsend"
# Bytes handed to `sendfile` at a time: each piece must leave within the send timeout.
PIECE = 8 * 2**20


class ProxyProtocol(H11Protocol):
    def __init__(
        self, *args: Any, header_timeout: float, send_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._send_timeout = send_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before and self.cycle is not None:  # a request began
            # Its task has not run yet: it sees the extension, and this `send`.
            self.scope.setdefault("extensions", {})[PATHSEND] = {}
            cycle = self.cycle
            cycle.send = partial(_send, cycle, cycle.send, self._send_timeout)  # type: ignore[method-assign]
        if self.conn.their_state is not h11.IDLE:  # the request's headers are in
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # first: a pipelined request is read right away, and disarms it
        super().on_response_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self._header_timeout, self._late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _late(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class _WholeFile:
    """What h11 is told the body is (its length), while the bytes go by `sendfile`."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


async def _send(cycle: RequestResponseCycle, send: Any, timeout: float, message: Message) -> None:
    if message["type"] != PATHSEND:
        await send(message)
        return
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected or cycle.response_complete:
        return
    with open(message["path"], "rb") as file:
        if cycle.scope["method"] != "HEAD":
            size = os.fstat(file.fileno()).st_size
            body = h11.Data(data=cast(bytes, _WholeFile(size)))  # h11 passes it through
            for piece in cycle.conn.send_with_data_passthrough(body) or ():
                if isinstance(piece, _WholeFile):
                    await _sendfile(cycle.transport, file, size, timeout)
                    log.debug("sent %s with sendfile (%d bytes)", message["path"], size)
                else:
                    cycle.transport.write(piece)
    cycle.response_complete = True
    cycle.message_event.set()
    cycle.transport.write(cycle.conn.send(h11.EndOfMessage()))
    if cycle.conn.our_state is h11.MUST_CLOSE or not cycle.keep_alive:
        cycle.conn.send(h11.ConnectionClosed())
        cycle.transport.close()
    cycle.on_response()


async def _sendfile(transport: asyncio.Transport, file: Any, size: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    offset = 0
    while offset < size:
        count = min(PIECE, size - offset)
        try:
            with anyio.fail_after(timeout):
                sent = await loop.sendfile(transport, file, offset, count)
        except TimeoutError:
            transport.close()
            raise ConnectionError(f"the client took nothing for {timeout:g} s") from None
        if not sent:
            raise ConnectionError("the client is gone")
        offset += sent
