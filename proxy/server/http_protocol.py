"""uvicorn's HTTP/1.1 protocol with two things it lacks: a deadline for request headers, and
the ASGI `http.response.pathsend` extension, answered with the kernel's `sendfile`.

- A connection must send its request headers within `header_timeout` (counted from when it
  opened or its last answer ended), as nginx's `client_header_timeout`: one that dribbles
  them is closed.
- A cached file (starlette's `FileResponse` sends `pathsend` when the server offers it) goes
  from the page cache to the socket by the kernel's sendfile, never through Python, in
  pieces the client must take in time (see `_sendfile`; one that stops reading is cut off,
  as on every other path). Ranges still take the chunked path.

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

from .responses import BodyCut

log = logging.getLogger("pypi_proxy.files")

PIECE, MAX_PIECE = 2**20, 8 * 2**20  # bytes handed to sendfile at a time (see `_sendfile`)

PATHSEND = "http.response.pathsend"
# Where the kernel has no sendfile (Windows), the extension is not offered: starlette then
# sends the file in chunks.
SENDFILE = hasattr(os, "sendfile")


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
        # asyncio's own loop sends a plain socket's files by the kernel; elsewhere (uvloop,
        # TLS, Windows) starlette's chunks do.
        self._sendfile = (
            SENDFILE
            and isinstance(self.loop, asyncio.SelectorEventLoop)
            and transport.get_extra_info("sslcontext") is None
        )
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self._sendfile and self.cycle is not before and self.cycle is not None:  # a request
            # Its task has not run yet: it sees the extension, and this `send`.
            self.scope.setdefault("extensions", {})[PATHSEND] = {}
            cycle = self.cycle
            cycle.send = partial(_send, cycle, cycle.send, self._send_timeout)  # type: ignore[method-assign]
        if self.conn.their_state is not h11.IDLE:  # the request's headers are in
            self._disarm()
        elif self._header_timer is None and not self.transport.is_closing():
            self._arm()  # waiting for a request again (an answer ended before its body did)

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
        self._header_timer = None  # fired: `handle_events` arms another once a request is due
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
    try:
        if cycle.flow.write_paused and not cycle.disconnected:
            with anyio.fail_after(timeout):
                await cycle.flow.drain()
        if cycle.disconnected or cycle.response_complete:
            return
        with open(message["path"], "rb") as file:
            if cycle.scope["method"] != "HEAD":
                await _send_body(cycle, file, timeout)
    # Gone, not reading, or the file evicted (SendfileNotAvailableError: sendfile failed at
    # once, which on a plain socket means the client left).
    except (OSError, TimeoutError, asyncio.SendfileNotAvailableError) as exc:
        cycle.transport.abort()
        raise BodyCut(f"{message['path']}: {exc or 'the client took nothing in time'}") from None
    cycle.response_complete = True
    cycle.message_event.set()
    cycle.transport.write(cycle.conn.send(h11.EndOfMessage()))
    if cycle.conn.our_state is h11.MUST_CLOSE or not cycle.keep_alive:
        cycle.conn.send(h11.ConnectionClosed())
        cycle.transport.close()
    cycle.on_response()


async def _send_body(cycle: RequestResponseCycle, file: Any, timeout: float) -> None:
    size = os.fstat(file.fileno()).st_size
    body = h11.Data(data=cast(bytes, _WholeFile(size)))  # h11 passes it through
    for part in cycle.conn.send_with_data_passthrough(body) or ():
        if isinstance(part, _WholeFile):
            await _sendfile(cycle.transport, file, size, timeout)
            log.debug("sent %s with sendfile (%d bytes)", file.name, size)
        else:
            cycle.transport.write(part)


async def _sendfile(transport: asyncio.Transport, file: Any, size: int, timeout: float) -> None:
    """The file by the kernel, in pieces: a client must take `PIECE` bytes per `timeout`
    (nginx's `send_timeout`, as a rate). Pieces grow while the client takes them fast, since
    each costs the event loop a few steps, and their deadline with them: a client that stops
    reading is cut off after `timeout` at a small piece, a few times that at the largest."""
    loop, offset, piece = asyncio.get_running_loop(), 0, PIECE
    while offset < size:
        started = loop.time()
        count = min(piece, size - offset)
        with anyio.fail_after(timeout * piece / PIECE):
            sent = await loop.sendfile(transport, file, offset, count, fallback=False)
        if not sent:
            raise ConnectionError("the client is gone")
        offset += sent
        took = loop.time() - started
        if took < timeout / 8:
            piece = min(piece * 2, MAX_PIECE)
        elif took > timeout / 2:
            piece = max(piece // 2, PIECE)
