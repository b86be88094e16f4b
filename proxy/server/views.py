"""The index: pages and files, at `/simple/...` and `/files/...` (the default index), and
under `/<index>/` for every index. Each view reads the app's services from `app.state`."""

from __future__ import annotations

import logging
import math

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..core.config import ConfigError, Index
from ..core.model import CacheResult, FileOrigin, InvalidName, NormalizedName, normalize
from ..core.redact import hide_passwords
from ..core.render import Format, Rendered, for_client, negotiate, render_project_list
from .errors import UpstreamError
from .files import serve_file
from .pages import PageCache
from .provenance import MEDIA_TYPE as PROVENANCE_TYPE
from .responses import cached_response
from .services import Services, services_of

log = logging.getLogger("pypi_proxy.app")

# Seconds a client is asked to wait after a 503 when no mirror's next probe says otherwise.
# Short, since pip sleeps as long as it is told before each of its retries.
RETRY_AFTER = 5
# A filename the cached page does not list has its page fetched again at most this often.
RELIST_INTERVAL = 10.0


async def root_index(request: Request) -> Response:
    fmt = _format(request)
    services = services_of(request)
    index = _index(request)
    found = await services.pages.project_list(index)

    def render(names: set[NormalizedName]) -> Rendered:
        return render_project_list(services.screening.names(index, names), fmt)

    body = await services.pages.rendered_names(found, (fmt, index), render)
    return _page(request, body, found.cache, services.config.page_ttl)


async def root_redirect(request: Request) -> Response:
    _index(request)
    return _redirect(request, "/simple/")


async def project_redirect(request: Request) -> Response:
    _index(request)
    return _redirect(request, f"/simple/{_project_name(request.path_params['project'])}/")


async def project_page(request: Request) -> Response:
    index = _index(request)
    raw = request.path_params["project"]
    name = _project_name(raw)
    if raw != name:
        return _redirect(request, f"/simple/{name}/")
    fmt = _format(request)
    services = services_of(request)
    _refuse_project(services, index, name)
    found = await services.pages.project(index, name)
    if found is None:
        raise HTTPException(404, f"no project named {name!r} in any upstream")
    services.warmer.used("page", f"{index.name}/{name}")
    screen = services.screening.page(index, name, found.group_of)
    shown = await services.pages.rendered(found, fmt, screen)
    services.screening.count(shown.hidden)
    services.screening.audit(request.url.path, shown.audited)
    body = for_client(shown.body, str(request.url.replace(query="")))
    return _page(request, body, found.cache, services.config.page_ttl)


async def file(request: Request) -> Response:
    """A file a project page lists, or what its page offers beside it: `<file>.metadata`
    (a wheel's core metadata) and `<file>.provenance` (PEP 740)."""
    index = _index(request)
    name = _project_name(request.path_params["project"])
    requested: str = request.path_params["filename"]
    services = services_of(request)
    _refuse_project(services, index, name)
    filename, _, beside = requested.rpartition(".")
    if beside not in _BESIDE:
        filename, beside = requested, ""
    origin = await _listed(services.pages, index, name, filename)
    refusal = services.screening.file(index, origin, request.url.path)
    if refusal is not None:
        raise HTTPException(404, refusal.reason)
    if beside == "metadata":
        if not origin.link.offers_metadata:
            raise HTTPException(404, f"{filename} has no metadata file")
        services.warmer.used("metadata", origin.link.key)
        path = await services.metadata.file(origin)
        services.warmer.after_metadata(index, path, request.headers.get("user-agent"))
        return cached_response(services.config, path)
    if beside == "provenance":
        if origin.link.provenance is None:
            raise HTTPException(404, f"{filename} has no provenance")
        path = await services.provenance.file(origin)
        return cached_response(services.config, path, PROVENANCE_TYPE)
    services.warmer.used("file", origin.link.key)
    return await serve_file(request, services, origin)


_BESIDE = ("metadata", "provenance")


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


def _refuse_project(services: Services, index: Index, name: NormalizedName) -> None:
    """A 404 for a project the index's policy refuses, before any upstream is asked."""
    refusal = services.screening.project(index, name)
    if refusal is not None:
        raise HTTPException(404, refusal.reason)


def _index(request: Request) -> Index:
    """The index a request is for: `/<name>/simple/...`, or the default `/simple/...`."""
    try:
        return services_of(request).config.index(request.path_params.get("index"))
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from None


def _redirect(request: Request, path: str) -> Response:
    prefix = f"/{request.path_params['index']}" if "index" in request.path_params else ""
    return RedirectResponse(prefix + path, status_code=301)


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
) -> FileOrigin:
    """The upstream file a client asks for, which must be one its project page lists.

    Any cached copy of the page will do (files are immutable); only a filename the copy does
    not know yet makes the page be fetched again, and then at most once per
    `RELIST_INTERVAL`: made-up filenames must not turn into upstream requests. An unknown
    project is asked again once per negative-cache interval (see `PageCache`).
    """
    found = await pages.project(index, name, max_age=float("inf"))
    if found is None:
        raise HTTPException(404, f"no project named {name!r} in any upstream")
    origin = found.origin(filename)
    if origin is None and found.cache is not CacheResult.MISS:
        found = await pages.project(index, name, max_age=RELIST_INTERVAL)
        origin = found.origin(filename) if found else None
    if origin is None:
        raise HTTPException(404, f"{name} lists no file {filename!r}")
    return pages.learned(origin)


def _page(request: Request, body: Rendered, cache: CacheResult, ttl: float) -> Response:
    headers = {
        "ETag": body.etag,
        "Vary": "Accept",
        "Cache-Control": f"max-age={int(ttl)}, public",
        "X-Cache": cache.value,
    }
    if etag_matches(request.headers.get("if-none-match"), body.etag):
        return Response(status_code=304, headers=headers)
    return Response(body.body, headers={**headers, "Content-Type": body.media_type})


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates
