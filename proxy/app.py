"""The HTTP face of the proxy: starlette routes over the page cache and the file fills."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import escape

import anyio
import diskcache
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from .blobs import BlobStore
from .clients import pip_ini
from .config import Config, Index
from .files import cached_response, file_response
from .fill import Fills
from .locks import FileLocks
from .memory import return_large_buffers_to_the_os
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics, MetricsMiddleware
from .model import FileLink, InvalidName, NormalizedName, normalize
from .pages import PageCache, ProjectFound
from .render import Format, Rendered, negotiate, render_project_list
from .upstream import NotFoundUpstream, UpstreamClient, UpstreamError

log = logging.getLogger("pypi_proxy.app")

# Seconds a client is asked to wait after a 503 when no mirror's next probe says otherwise.
# Short, since pip sleeps as long as it is told before each of its retries.
RETRY_AFTER = 5


@dataclass
class Services:
    client: UpstreamClient
    pages: PageCache
    fills: Fills


def create_app(config: Config) -> Starlette:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        return_large_buffers_to_the_os()
        store = BlobStore(config.cache_dir, config.max_size, config.min_free)
        locks = FileLocks(config.cache_dir / "locks")
        await anyio.to_thread.run_sync(store.usage)  # one scan at start, off the event loop
        removed = store.clean(locks)
        if removed:
            log.info("removed %d partial downloads left by an earlier run", removed)
        client = UpstreamClient(config, metrics)
        with diskcache.Cache(str(config.cache_dir / "index")) as db:
            fills = Fills(store, db, client, locks)
            metrics.watch(fills.in_flight, store.usage)
            services = Services(client, PageCache(config, db, client), fills)
            app.state.services = services
            try:
                yield
            finally:
                await fills.aclose()
                await services.pages.aclose()
                await client.aclose()
                locks.close()

    async def home(request: Request) -> Response:
        index = str(request.url_for("root_index"))
        return HTMLResponse(
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>pypi-proxy</title>'
            f"</head><body><h1>pypi-proxy</h1><p>Index URL: <code>{escape(index)}</code></p>"
            f"<pre>{escape(pip_ini(index))}</pre></body></html>"
        )

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    async def health(request: Request) -> Response:
        """Serving, and how each upstream mirror is doing."""
        upstreams = _services(request).client.report()
        return JSONResponse({"status": "ok", "pid": os.getpid(), "upstreams": upstreams})

    def index_of(request: Request) -> Index:
        """The index a request is for: `/<name>/simple/...`, or the default `/simple/...`."""
        name = request.path_params.get("index")
        index = config.indexes[0] if name is None else config.index(name)
        if index is None:
            known = ", ".join(i.name for i in config.indexes)
            raise HTTPException(404, f"no index named {name!r} (known: {known})")
        return index

    def redirect(request: Request, path: str) -> Response:
        prefix = f"/{request.path_params['index']}" if "index" in request.path_params else ""
        return RedirectResponse(prefix + path, status_code=301)

    async def root_index(request: Request) -> Response:
        fmt = _format(request)
        found = await _services(request).pages.project_list(index_of(request))
        body = await found.entry.rendered(fmt, render_project_list)
        return _page(request, body, found.cache, config.page_ttl)

    async def root_redirect(request: Request) -> Response:
        index_of(request)
        return redirect(request, "/simple/")

    async def project_redirect(request: Request) -> Response:
        index_of(request)
        return redirect(request, f"/simple/{_project_name(request.path_params['project'])}/")

    async def project_page(request: Request) -> Response:
        index = index_of(request)
        raw = request.path_params["project"]
        name = _project_name(raw)
        if raw != name:
            return redirect(request, f"/simple/{name}/")
        fmt = _format(request)
        found = await _services(request).pages.project(index, name)
        if found is None:
            raise HTTPException(404, f"no project named {name!r} in any upstream")
        body = await _services(request).pages.rendered(found, fmt)
        return _page(request, body, found.cache, config.page_ttl)

    async def file(request: Request) -> Response:
        index = index_of(request)
        name = _project_name(request.path_params["project"])
        filename: str = request.path_params["filename"]
        services = _services(request)
        if filename.endswith(".metadata"):
            dist = filename.removesuffix(".metadata")
            found, link = await _listed(services.pages, index, name, dist)
            if not link.offers_metadata:
                raise HTTPException(404, f"{link.filename} has no metadata file")
            metadata = await services.fills.metadata(*found.origin(link.filename), link)
            return cached_response(config, metadata)

        found, link = await _listed(services.pages, index, name, filename)
        return await file_response(
            request, config, services.fills, services.client, *found.origin(filename), link
        )

    async def upstream_unavailable(request: Request, exc: Exception) -> Response:
        log.warning("%s %s: 503: %s", request.method, request.url.path, exc)
        wait = exc.retry_after if isinstance(exc, UpstreamError) else None
        retry_after = RETRY_AFTER if wait is None else min(max(math.ceil(wait), 1), 60)
        return Response(
            f"upstream unavailable: {exc}\n",
            status_code=503,
            media_type="text/plain",
            headers={"Retry-After": str(retry_after)},
        )

    async def upstream_missing(request: Request, exc: Exception) -> Response:
        return Response(f"not found upstream: {exc}\n", status_code=404, media_type="text/plain")

    routes = [
        Route("/", home),
        Route("/-/health", health),
        Route("/metrics", prometheus),
    ]
    # The default index at /simple/, every index (the default too) at /<name>/simple/.
    for prefix in ("", "/{index}"):
        routes += [
            Route(f"{prefix}/simple", root_redirect),
            Route(f"{prefix}/simple/", root_index, name="root_index" if not prefix else None),
            Route(f"{prefix}/simple/{{project}}", project_redirect),
            Route(f"{prefix}/simple/{{project}}/", project_page),
            Route(f"{prefix}/files/{{project}}/{{filename}}", file, methods=["GET", "HEAD"]),
        ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        exception_handlers={
            UpstreamError: upstream_unavailable,
            NotFoundUpstream: upstream_missing,
        },
    )


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _project_name(raw: str) -> NormalizedName:
    try:
        return normalize(raw)
    except InvalidName as exc:
        raise HTTPException(404, str(exc)) from None


def _format(request: Request) -> Format:
    fmt = negotiate(request.headers.get("accept"))
    if fmt is None:
        raise HTTPException(
            406,
            "acceptable: application/vnd.pypi.simple.v1+json, "
            "application/vnd.pypi.simple.v1+html, text/html",
        )
    return fmt


async def _listed(
    pages: PageCache, index: Index, name: NormalizedName, filename: str
) -> tuple[ProjectFound, FileLink]:
    """The upstream file a client asks for, which must be one its project page lists.

    Any cached copy of the page will do (files are immutable); only a filename the copy does
    not know yet makes the page be fetched again.
    """
    found = await pages.project(index, name, max_age=float("inf"))
    link = found.value.file(filename) if found else None
    if link is None and (found is None or found.cache != "MISS"):
        found = await pages.project(index, name, max_age=0)
        link = found.value.file(filename) if found else None
    if found is None or link is None:
        raise HTTPException(404, f"{name} lists no file {filename!r}")
    return found, link


def _page(request: Request, body: Rendered, cache: str, ttl: float) -> Response:
    headers = {
        "ETag": body.etag,
        "Vary": "Accept",
        "Cache-Control": f"max-age={int(ttl)}, public",
        "X-Cache": cache,
    }
    if _etag_matches(request.headers.get("if-none-match"), body.etag):
        return Response(status_code=304, headers=headers)
    return Response(body.body, headers={**headers, "Content-Type": body.media_type})


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates
