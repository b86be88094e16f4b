"""The HTTP face of the proxy: routes, the services' lifespan, and the middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from ..core.config import Config
from . import conda_views, json_views, publishing, status_views, views
from .client_deadlines import SendDeadlineMiddleware
from .drain import Drain, DrainMiddleware
from .errors import NotFoundUpstream, UpstreamError
from .logs import throttle_accept_errors
from .memory import return_large_buffers_to_the_os
from .metrics import Metrics
from .observe import ObserveMiddleware
from .responses import quiet_body_cuts
from .services import open_services
from .slashes import SlashesMiddleware


def create_app(config: Config, *, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The proxy as an ASGI app. `transport` carries its upstream requests (the network when
    None; an `httpx.MockTransport` in tests)."""
    metrics = Metrics()
    drain = Drain(config.drain_timeout)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        return_large_buffers_to_the_os()
        quiet_body_cuts()
        throttle_accept_errors(asyncio.get_running_loop())
        drain.install()
        async with open_services(config, metrics, transport) as services:
            app.state.services = services
            yield

    routes = [
        Route("/", status_views.home),
        Route("/-/health", status_views.health),
        Route("/metrics", status_views.metrics),
    ]
    # The default index at /simple/, every index (the default too) at /<name>/simple/.
    for prefix in ("", "/{index}"):
        routes += [
            Route(f"{prefix}/simple", views.root_redirect),
            Route(f"{prefix}/simple/", views.root_index),
            Route(f"{prefix}/simple/{{project}}", views.project_redirect),
            Route(f"{prefix}/simple/{{project}}/", views.project_page),
            Route(f"{prefix}/files/{{project}}/{{filename}}", views.file, methods=["GET", "HEAD"]),
        ]
    # After the index's routes: `/simple/setup.py` stays a project name (redirected).
    routes += [Route(path, status_views.setup) for path in ("/setup.py", "/{index}/setup.py")]
    routes += [
        Route(p, publishing.upload, methods=["POST"])
        for p in ("/upload/{group}/", "/upload/{group}")
    ]
    routes.append(Route("/conda/{path:path}", conda_views.conda, methods=["GET", "HEAD"]))
    routes.append(Route("/{path:path}/json", json_views.legacy))  # after all the others
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(ObserveMiddleware, metrics=metrics),
            Middleware(DrainMiddleware, drain=drain),
            Middleware(SlashesMiddleware),
            Middleware(SendDeadlineMiddleware, timeout=config.client_send_timeout),
        ],
        exception_handlers={
            UpstreamError: views.upstream_unavailable,
            NotFoundUpstream: views.upstream_missing,
        },
    )
    app.state.drain = drain
    return app
