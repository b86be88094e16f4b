"""The official index's older JSON API (see `core.legacy_json`), where the tools that read it
look: `/pypi/<project>/json` and `/<project>/json` (pip-tools 7.6.1 on joins the index URL
without `simple/` with `<project>/json`), each also with a `/<version>` before `json`, at the
root for the default index and under `/<index>/` for every index."""

from __future__ import annotations

from functools import partial
from urllib.parse import urljoin

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..core.config import Config, Index
from ..core.legacy_json import NoSuchVersion, legacy_json
from ..core.model import FileLink, InvalidName, NormalizedName, ProjectPage, normalize
from ..core.render import file_href
from .services import Services, services_of


async def legacy(request: Request) -> Response:
    services = services_of(request)
    index, prefix, name, version = _asked(services.config, request.path_params["path"])
    page = await _page(services, index, name)
    page_url = f"{request.base_url}{prefix}simple/{name}/"  # as the client reached the index
    try:
        document = legacy_json(page, version, partial(_file_url, page_url, name))
    except NoSuchVersion as exc:
        raise HTTPException(404, str(exc)) from None
    ttl = int(services.config.page_ttl)
    return JSONResponse(document, headers={"Cache-Control": f"max-age={ttl}, public"})


def _asked(config: Config, path: str) -> tuple[Index, str, NormalizedName, str | None]:
    """The index (the path's first segment, if that names one; else the default), the path's
    prefix for it, and the project and version asked for."""
    segments = path.strip("/").split("/")
    names = {index.name: index for index in config.indexes}
    index, prefix = config.index(), ""
    if len(segments) > 1 and segments[0] in names:
        index, prefix, segments = names[segments[0]], f"{segments[0]}/", segments[1:]
    if segments[:1] == ["pypi"] and len(segments) > 1:
        segments = segments[1:]
    if len(segments) not in (1, 2):
        raise HTTPException(404, "not /<project>/json nor /<project>/<version>/json")
    try:
        name = normalize(segments[0])
    except InvalidName as exc:
        raise HTTPException(404, str(exc)) from None
    return index, prefix, name, segments[1] if len(segments) == 2 else None


async def _page(services: Services, index: Index, name: NormalizedName) -> ProjectPage:
    """The project's page as the index shows it: screened by its policy, with what the
    proxy learned of the files."""
    refusal = services.screening.project(index, name)
    if refusal is not None:
        raise HTTPException(404, refusal.reason)
    found = await services.pages.project(index, name)
    if found is None:
        raise HTTPException(404, f"no project named {name!r} in any upstream")
    screen = services.screening.page(index, name, found.group_of)
    page = screen.screen(found.value).page if screen else found.value
    return services.pages.with_lessons(page)


def _file_url(page_url: str, name: NormalizedName, link: FileLink) -> str:
    """A file's URL as a client resolves its link on the simple page."""
    return urljoin(page_url, file_href(name, link.filename))
