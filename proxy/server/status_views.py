"""The proxy's own pages: the status page at `/`, `/-/health`, and `/metrics`."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..core.config import Config, Index
from ..core.lan import EVERY_ADDRESS, is_loopback
from ..core.model import NormalizedName
from ..core.pytorch_builds import offer_of, torch_groups
from ..core.status_page import CacheFigures, DownloadProgress, Snapshot, render_status
from ..core.version import proxy_version
from .interfaces import reachable_addresses
from .metrics import CONTENT_TYPE
from .services import Services, services_of


async def home(request: Request) -> Response:
    services = services_of(request)
    store, config = services.store, services.config
    files, used = store.totals()
    base = _base_for_clients(request, config)
    snapshot = Snapshot(
        version=proxy_version(),
        uptime=time.monotonic() - services.started,
        mirrors=services.client.reports(),
        cache=CacheFigures(
            files, used, store.max_size, shutil.disk_usage(store.files).free, store.min_free
        ),
        traffic=services.metrics.traffic(),
        downloads=[
            DownloadProgress(f.filename, f.written, f.size) for f in services.filler.fills()
        ],
        indexes=[await _index(services, base, index) for index in config.indexes],
        hidden=services.metrics.hidden(),
        advisories=services.advisories.counts(),
    )
    return HTMLResponse(render_status(snapshot), headers={"Cache-Control": "no-store"})


async def _index(services: Services, base: str, index: Index) -> tuple[str, str, str]:
    """An index as the status page shows it: its name, URL and what it offers of torch."""
    config, torch = services.config, NormalizedName("torch")
    pages = {g: await services.pages.cached(config.upstream(g), torch) for g in torch_groups(index)}
    return index.name, base + config.index_path(index), offer_of(index, pages.get)


def _base_for_clients(request: Request, config: Config) -> str:
    """The proxy's URL as the other machines reach it: the one this browser used, unless
    that is loopback (the page opened on the proxy's own machine), then its LAN address."""
    base = str(request.base_url).rstrip("/")
    if not is_loopback(request.url.hostname or "") or config.host not in EVERY_ADDRESS:
        return base
    addresses = reachable_addresses()
    port = request.url.port or config.port
    return f"{request.url.scheme}://{addresses[0]}:{port}" if addresses else base


async def metrics(request: Request) -> Response:
    return Response(services_of(request).metrics.render(), media_type=CONTENT_TYPE)


async def health(request: Request) -> Response:
    """200 while the proxy can serve; 503 when it cannot write its cache. Upstreams that are
    all down make it "degraded" but still serving: what is cached still is."""
    services = services_of(request)
    upstreams = services.client.reports()
    problems = [
        f"upstream {name}: every mirror is down"
        for name, mirrors in upstreams.items()
        if not any(m.up for m in mirrors)
    ]
    unwritable = await anyio.to_thread.run_sync(_unwritable, services.store.tmp)
    if unwritable is not None:
        problems.insert(0, f"cache not writable: {unwritable}")
    status = "unavailable" if unwritable else "degraded" if problems else "ok"
    document = {
        "status": status,
        "problems": problems,
        "pid": os.getpid(),
        "upstreams": {name: [m.as_json() for m in group] for name, group in upstreams.items()},
    }
    return JSONResponse(
        document, status_code=503 if unwritable else 200, headers={"Cache-Control": "no-store"}
    )


def _unwritable(directory: Path) -> str | None:
    """Why files cannot be written in this directory now; None when they can."""
    probe = directory / f"health-{uuid.uuid4().hex}.put"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
