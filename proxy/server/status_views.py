"""The proxy's own pages: the status page at `/`, `/-/health`, and `/metrics`."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from importlib import resources
from pathlib import Path

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..core.config import Config, ConfigError, Index
from ..core.health import MirrorReport
from ..core.lan import EVERY_ADDRESS, is_loopback
from ..core.model import NormalizedName
from ..core.pytorch_builds import TorchOffer, offer_in, torch_groups
from ..core.setup_script import profile_of, setup_script, valid_host
from ..core.status_page import (
    CacheFigures,
    CondaFigures,
    DownloadProgress,
    Snapshot,
    StoreFigures,
    render_status,
)
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
        store=_store_figures(services),
        conda=await _conda_figures(services, base),
    )
    return HTMLResponse(render_status(snapshot), headers={"Cache-Control": "no-store"})


async def _conda_figures(services: Services, base: str) -> CondaFigures | None:
    if services.conda is None:
        return None
    listed = await anyio.to_thread.run_sync(services.conda.listing.listed)
    channels = tuple(c.name for c in services.config.conda_channels)
    return CondaFigures(f"{base}/conda", channels, listed, services.metrics.conda_counts())


async def _index(services: Services, base: str, index: Index) -> tuple[str, str, str]:
    """An index as the status page shows it: its name, URL and what it offers of torch."""
    offer = await _torch_offer(services, index)
    described = offer.describe() if offer else "torch: not fetched yet"
    return index.name, base + services.config.index_path(index), described


async def _torch_offer(services: Services, index: Index) -> TorchOffer | None:
    """The newest torch of the index, from the pages cached now (nothing is fetched)."""
    config, torch = services.config, NormalizedName("torch")
    pages = {g: await services.pages.cached(config.upstream(g), torch) for g in torch_groups(index)}
    return offer_in(index, pages.get)


async def setup(request: Request) -> Response:
    """The setup script (`proxy.client.machine_setup`) for the host this request named:
    at `/setup.py` it picks the profile by the machine's GPU, at `/<index>/setup.py` it sets
    up that index."""
    services = services_of(request)
    config, host = services.config, request.headers.get("host", "")
    if not valid_host(host):
        raise HTTPException(400, "Host header: not a host name or address with an optional port")
    pinned = request.path_params.get("index")
    if pinned is not None:
        try:
            config.index(pinned)
        except ConfigError as exc:
            raise HTTPException(404, str(exc)) from None
    profiles = [profile_of(config, i, await _torch_offer(services, i)) for i in config.indexes]
    channels = [c.name for c in config.conda_channels]
    script = setup_script(_SETUP_TEMPLATE, host, profiles, pinned, channels)
    return Response(script, media_type="text/x-python", headers={"Cache-Control": "no-store"})


def _base_for_clients(request: Request, config: Config) -> str:
    """The proxy's URL as the other machines reach it: the one this browser used, unless
    that is loopback (the page opened on the proxy's own machine), then its LAN address."""
    base = str(request.base_url).rstrip("/")
    if not is_loopback(request.url.hostname or "") or config.host not in EVERY_ADDRESS:
        return base
    addresses = reachable_addresses()
    port = request.url.port or config.port
    return f"{request.url.scheme}://{addresses[0]}:{port}" if addresses else base


_SETUP_TEMPLATE = (resources.files("proxy.client") / "machine_setup.py").read_text("utf-8")


async def metrics(request: Request) -> Response:
    return Response(services_of(request).metrics.render(), media_type=CONTENT_TYPE)


async def health(request: Request) -> Response:
    """200 while the proxy can serve; 503 when it cannot write its cache, or is draining
    (shutting down: a load balancer takes it out). Upstreams that are all down, or an object
    store that is, make it "degraded" but still serving: what is cached still is."""
    services = services_of(request)
    upstreams = services.client.reports()
    problems = [
        f"upstream {name}: every mirror is down"
        for name, mirrors in upstreams.items()
        if not any(m.up for m in mirrors)
    ]
    store = _store_health(services)
    if store is not None and not store["up"]:
        problems.append(f"object store {store['url']}: unreachable ({store['last_error']})")
    status = "degraded" if problems else "ok"
    unwritable = await anyio.to_thread.run_sync(_unwritable, services.store.tmp)
    if unwritable is not None:
        problems.insert(0, f"cache not writable: {unwritable}")
        status = "unavailable"
    if request.app.state.drain.draining:
        problems.insert(0, "draining: shutting down once the requests under way are answered")
        status = "draining"
    document: dict[str, object] = {
        "status": status,
        "problems": problems,
        "pid": os.getpid(),
        "upstreams": {name: [m.as_json() for m in group] for name, group in upstreams.items()},
    }
    if store is not None:
        document["store"] = store
    serving = status in ("ok", "degraded")
    return JSONResponse(
        document, status_code=200 if serving else 503, headers={"Cache-Control": "no-store"}
    )


def _store_figures(services: Services) -> StoreFigures | None:
    state = _store_state(services)
    if state is None:
        return None
    report, url, pending = state
    hits, failures = services.metrics.store_counts()
    return StoreFigures(url, report.up, report.last_error, hits, pending, failures)


def _store_health(services: Services) -> dict[str, object] | None:
    """The object store's health: its URL (never its credentials), circuit and uploads."""
    state = _store_state(services)
    if state is None:
        return None
    report, url, pending = state
    return {**report.as_json(), "url": url, "up": report.up, "uploads_pending": pending}


def _store_state(services: Services) -> tuple[MirrorReport, str, int] | None:
    """The object store's circuit, URL and uploads pending; None without a store."""
    report, store = services.client.mirrors.bucket_report(), services.config.store
    if report is None or store is None or services.uploads is None:
        return None
    return report, store.url, services.uploads.pending()


def _unwritable(directory: Path) -> str | None:
    """Why files cannot be written in this directory now; None when they can."""
    probe = directory / f"health-{uuid.uuid4().hex}.put"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
