"""Conda channels at `/conda/<channel>/<subdir>/<file>`: index files as cached (see
`conda_index`), shards and packages as files of the blob store, served with Range."""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..core.conda_channels import CondaPath, Kind, NotConda, conda_path
from ..core.model import FileOrigin
from .conda import CondaChannels
from .files import serve_file
from .fill import VERIFIED_FIRST, FillFailed
from .responses import BlobResponse, cached_response
from .services import Services, services_of
from .views import etag_matches

_MEDIA_TYPES = {
    ".json": "application/json",
    ".zst": "application/zstd",
    ".bz2": "application/x-bzip2",
}


async def conda(request: Request) -> Response:
    services = services_of(request)
    channels = services.conda
    if channels is None:
        raise HTTPException(404, "no conda channels are served here (see conda: in the config)")
    try:
        file = conda_path(services.config.conda_channels, request.path_params["path"])
    except NotConda as exc:
        raise HTTPException(404, str(exc)) from None
    services.metrics.conda_request(file.kind.value)
    if file.kind is Kind.INDEX:
        return await _index_file(request, services, channels, file)
    if file.kind is Kind.SHARD:
        return await _shard(services, channels, file)
    origin = await channels.package(file)
    if origin is None:
        raise HTTPException(404, f"{file.name}: not listed by the cached index of {file.subdir}")
    await channels.served(origin, file)
    if origin.link.size is not None and origin.link.size <= VERIFIED_FIRST:
        return cached_response(services.config, await _whole(services, origin))
    return await serve_file(request, services, origin)


async def _index_file(
    request: Request, services: Services, channels: CondaChannels, file: CondaPath
) -> Response:
    found = await channels.index.get(file)
    headers = {"Cache-Control": f"max-age={int(services.config.page_ttl)}, public",
               "X-Cache": found.cache.value}  # fmt: skip
    if found.path is None:
        upstream = file.channel.upstream
        return Response(f"{file.name}: no mirror of {upstream} has it\n", 404,
                        headers=headers, media_type="text/plain")  # fmt: skip
    headers["ETag"] = f'"{found.known.version}"'
    if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    media_type = _MEDIA_TYPES.get(found.path.suffix, "application/octet-stream")
    return BlobResponse(found.path, media_type=media_type, headers=headers)


async def _shard(services: Services, channels: CondaChannels, file: CondaPath) -> Response:
    origin = await channels.shard(file)
    if origin is None:
        raise HTTPException(404, f"{file.name}: not named by the cached shard index")
    path = await _whole(services, origin)
    await channels.read_shard(file, path)
    return cached_response(services.config, path)


async def _whole(services: Services, origin: FileOrigin) -> Path:
    """A small file, verified before a byte of it is sent (as `Fill.readable` holds it back
    anyway); one that does not verify is fetched once more, from the next source first, before
    the client is answered: conda clients give up on a 503 where pip would ask again."""
    filler = services.filler

    async def stored() -> Path:
        return filler.cached(origin.link) or await filler.start(origin).wait()

    try:
        return await stored()
    except FillFailed:
        return await stored()
