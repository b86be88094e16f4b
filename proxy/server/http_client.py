"""The HTTP client for upstream requests, and the one place where its errors become ours.

The proxy and `pypi-proxy check` build their client here, so what the check finds is what
the proxy gets: the same TLS trust, timeouts, redirects and User-Agent.

Timeouts are about progress, not total time: one to connect, one for the response headers
(time to first byte), and one for a body that stops moving (stall). A 2.5 GB download that
keeps moving is never cut.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import httpx

from ..core.config import Config
from ..core.version import user_agent

# Preferring JSON: it carries size and upload-time, which HTML cannot.
PAGE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
# Answers that mean "no such project". The PyTorch index says 403 for names it lacks.
NOT_FOUND = frozenset({403, 404, 410})


class RequestFailed(Exception):
    """A request to one mirror got no usable answer: refused, timed out, broken off. The
    message is the short reason; `timeout` says whether it was a timeout (a hanging mirror,
    the costliest kind of broken); `local`, that it never left the proxy (no free
    connection in its own pool): no fault of the mirror's."""

    def __init__(self, reason: str, *, timeout: bool = False, local: bool = False) -> None:
        super().__init__(reason)
        self.timeout = timeout
        self.local = local


def build_http_client(
    config: Config,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    limits: httpx.Limits | None = None,
    follow_redirects: bool = True,
    http2: bool = False,
    mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> httpx.AsyncClient:
    """`http2`: offered to mirrors over TLS (ALPN), which answer with it or HTTP/1.1;
    `mounts`: transports for URLs of other schemes (local folders)."""
    context = ssl.create_default_context(cafile=str(config.ca_bundle) if config.ca_bundle else None)
    return httpx.AsyncClient(
        # httpx's read timeout is per read: it is the stall timeout. Time to first byte is
        # bounded around sending the request (`send`).
        timeout=httpx.Timeout(
            connect=config.connect_timeout,
            read=config.stall_timeout,
            write=config.stall_timeout,
            # Below the first-byte timeout: waiting for a connection of our own must end as
            # the pool's timeout (not the mirror's fault), never as the mirror's.
            pool=min(config.connect_timeout, config.first_byte_timeout / 2),
        ),
        follow_redirects=follow_redirects,
        headers={"User-Agent": user_agent()},
        verify=context,
        limits=limits or httpx.Limits(max_connections=200, max_keepalive_connections=40),
        transport=transport,
        http2=http2,
        mounts=mounts,
    )


@contextmanager
def mapped_errors() -> Iterator[None]:
    """httpx's exceptions (and a redirect to a URL it cannot read) as `RequestFailed`."""
    try:
        yield
    except httpx.PoolTimeout:
        raise RequestFailed("every upstream connection is busy", local=True) from None
    except httpx.HTTPError as exc:
        raise RequestFailed(
            _describe(exc), timeout=isinstance(exc, httpx.TimeoutException)
        ) from None
    except httpx.InvalidURL as exc:
        raise RequestFailed(_describe(exc)) from None


async def send(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], first_byte_timeout: float
) -> httpx.Response:
    """A streamed GET, once its headers are in (within `first_byte_timeout`)."""
    try:
        with anyio.fail_after(first_byte_timeout), mapped_errors():
            request = http.build_request("GET", url, headers=headers)  # may reject the URL
            return await http.send(request, stream=True)
    except TimeoutError:
        raise RequestFailed(f"no response within {first_byte_timeout:g} s", timeout=True) from None


def _describe(exc: Exception) -> str:
    kind = type(exc).__name__
    detail = str(exc)
    return f"{kind}: {detail}" if detail else kind
