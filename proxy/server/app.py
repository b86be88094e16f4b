"""The HTTP face of the proxy: starlette routes over the page cache and the file fills."""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

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

from ..core.config import Config, ConfigError, Index
from ..core.model import FileLink, InvalidName, NormalizedName, hide_passwords, normalize
from ..core.render import Format, Rendered, negotiate, render_project_list
from ..core.status_page import CacheFigures, Download, Snapshot, Traffic, render_status
from .blobs import BlobStore
from .files import cached_response, file_response
from .fill import Fills
from .locks import FileLocks
from .memory import return_large_buffers_to_the_os
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics, is_file_route
from .observe import ObserveMiddleware
from .pages import PageCache, ProjectFound
from .upstream import NotFoundUpstream, UpstreamClient, UpstreamError, proxy_version

log = logging.getLogger("pypi_proxy.app")

# Seconds a client is asked to wait after a 503 when no mirror's next probe says otherwise.
# Short, since pip sleeps as long as it is told before each of its retries.
RETRY_AFTER = 5


@dataclass
class Services:
    client: UpstreamClient
    pages: PageCache
    fills: Fills
    store: BlobStore


def create_app(config: Config) -> Starlette:
    metrics = Metrics()
    started = time.monotonic()

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
            services = Services(client, PageCache(config, db, client), fills, store)
            app.state.services = services
            try:
                yield
            finally:
                await fills.aclose()
                await services.pages.aclose()
                await client.aclose()
                locks.close()

    async def home(request: Request) -> Response:
        services = _services(request)
        store = services.store
        files, used = store.totals()
        base = str(request.base_url).rstrip("/")
        snapshot = Snapshot(
            version=proxy_version(),
            uptime=time.monotonic() - started,
            mirrors=services.client.report(),
            cache=CacheFigures(
                files, used, store.max_size, shutil.disk_usage(store.files).free, store.min_free
            ),
            traffic=_traffic(metrics),
            downloads=[Download(f.filename, f.written, f.size) for f in services.fills.downloads()],
            indexes=[
                (index.name, f"{base}/{index.name + '/' if i else ''}simple/")
                for i, index in enumerate(config.indexes)
            ],
        )
        return HTMLResponse(render_status(snapshot), headers={"Cache-Control": "no-store"})

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    async def health(request: Request) -> Response:
        """200 while the proxy can serve; 503 when it cannot write its cache. Upstreams
        that are all down make it "degraded" but still serving: what is cached still is."""
        services = _services(request)
        upstreams = services.client.report()
        problems = [
            f"upstream {name}: every mirror is down"
            for name, mirrors in upstreams.items()
            if all(m["state"] != "closed" for m in mirrors)
        ]
        writable = await anyio.to_thread.run_sync(_writable, services.store.tmp)
        if writable is not None:
            problems.insert(0, f"cache not writable: {writable}")
        status = "unavailable" if writable else "degraded" if problems else "ok"
        return JSONResponse(
            {"status": status, "problems": problems, "pid": os.getpid(), "upstreams": upstreams},
            status_code=503 if writable else 200,
            headers={"Cache-Control": "no-store"},
        )

    def index_of(request: Request) -> Index:
        """The index a request is for: `/<name>/simple/...`, or the default `/simple/...`."""
        try:
            return config.index(request.path_params.get("index"))
        except ConfigError as exc:
            raise HTTPException(404, str(exc)) from None

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
        reason = hide_passwords(str(exc))
        log.warning("%s %s: 503: %s", request.method, request.url.path, reason)
        wait = exc.retry_after if isinstance(exc, UpstreamError) else None
        retry_after = RETRY_AFTER if wait is None else min(max(math.ceil(wait), 1), 60)
        return Response(
            f"upstream unavailable: {reason}\n",
            status_code=503,
            media_type="text/plain",
            headers={"Retry-After": str(retry_after)},
        )

    async def upstream_missing(request: Request, exc: Exception) -> Response:
        return Response(
            f"not found upstream: {hide_passwords(str(exc))}\n",
            status_code=404,
            media_type="text/plain",
        )

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
        middleware=[Middleware(ObserveMiddleware, metrics=metrics)],
        exception_handlers={
            UpstreamError: upstream_unavailable,
            NotFoundUpstream: upstream_missing,
        },
    )


def _traffic(metrics: Metrics) -> Traffic:
    def answers(kind: str, result: str | None = None) -> int:
        return int(
            metrics.total(
                "pypi_proxy_cache_results_total",
                lambda labels: labels["kind"] == kind and result in (None, labels["result"]),
            )
        )

    return Traffic(
        file_hits=answers("file", "HIT"),
        file_answers=answers("file"),
        page_hits=answers("page", "HIT"),
        page_answers=answers("page"),
        served=int(metrics.total("pypi_proxy_sent_bytes_total", is_file_route)),
        fetched=int(metrics.total("pypi_proxy_upstream_bytes_total")),
    )


def _writable(directory: Path) -> str | None:
    """Why files cannot be written in this directory now; None when they can."""
    probe = directory / f"health-{uuid.uuid4().hex}.put"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


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
