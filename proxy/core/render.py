"""The model into PEP 503 HTML or PEP 691 JSON, with links that only lead back to the proxy.

Links are relative (`../../files/<project>/<file>`), so a page works whatever host name or
address on the LAN a client used to reach the proxy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from html import escape
from urllib.parse import quote, urljoin

from packaging.version import Version

from .model import FileLink, NormalizedName, ProjectPage, name_and_version

# 1.1: PEP 700 (size, upload-time, versions); up to 1.4 the fields passed through from the
# upstream where it gives them: PEP 708 tracks and alternate-locations, PEP 740 provenance,
# PEP 792 project status.
API_VERSION = "1.4"


class Format(Enum):
    """The three answers pip, uv and Poetry accept; uv refuses any other Content-Type."""

    JSON = "application/vnd.pypi.simple.v1+json"
    HTML = "application/vnd.pypi.simple.v1+html"
    TEXT_HTML = "text/html"


# Accept ranges that name a format. `latest` is PEP 691's alias for the newest version.
_EXACT = {
    "application/vnd.pypi.simple.v1+json": Format.JSON,
    "application/vnd.pypi.simple.latest+json": Format.JSON,
    "application/vnd.pypi.simple.v1+html": Format.HTML,
    "application/vnd.pypi.simple.latest+html": Format.HTML,
    "text/html": Format.TEXT_HTML,
}
# Among equal q-values: a client that names JSON gets it (it carries size and upload-time);
# a client that accepts just anything (`*/*`, a browser) gets plain HTML.
_NAMED_PREFERENCE = [Format.TEXT_HTML, Format.HTML, Format.JSON]
_WILDCARD_PREFERENCE = [Format.JSON, Format.HTML, Format.TEXT_HTML]


def negotiate(accept: str | None) -> Format | None:
    """The format to answer with, or None when the client accepts none of ours (406)."""
    if not accept or not accept.strip():
        return Format.TEXT_HTML
    best: tuple[float, int, int] | None = None
    chosen: Format | None = None
    for media_range, q in _parse_accept(accept):
        for fmt in Format:
            specificity = _match(media_range, fmt)
            if specificity is None or q <= 0:
                continue
            order = _NAMED_PREFERENCE if specificity == 2 else _WILDCARD_PREFERENCE
            key = (q, specificity, order.index(fmt))
            if best is None or key > best:
                best, chosen = key, fmt
    return chosen


def _match(media_range: str, fmt: Format) -> int | None:
    if _EXACT.get(media_range) is fmt:
        return 2
    if media_range == "*/*":
        return 0
    kind, _, sub = media_range.partition("/")
    if sub == "*" and fmt.value.startswith(kind + "/"):
        return 1
    return None


def _parse_accept(accept: str) -> Iterable[tuple[str, float]]:
    for item in accept.split(","):
        media_range, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if media_range:
            yield media_range.lower(), q


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    etag: str
    per_client: bool = False  # it holds `FILES_URL`, for `for_client` to fill in


def _rendered(body: str, fmt: Format, per_client: bool = False) -> Rendered:
    data = body.encode("utf-8")
    media_type = fmt.value + ("; charset=utf-8" if fmt is Format.TEXT_HTML else "")
    return Rendered(data, media_type, _etag(data), per_client)


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def file_href(project: NormalizedName, filename: str) -> str:
    """A file's link, relative to its project page `/simple/<project>/`."""
    return f"../../files/{project}/{quote(filename, safe='')}"


# PEP 740 wants provenance links absolute, for the host the client used. Pages are rendered
# once for every host with this in place of the files URL (a filename, percent-encoded, never
# holds a ':'), which `for_client` puts in per answer.
FILES_URL = "pypi-proxy:files/"


def _provenance_href(project: NormalizedName, filename: str) -> str:
    return f"{FILES_URL}{project}/{quote(filename, safe='')}.provenance"


def for_client(rendered: Rendered, page_url: str) -> Rendered:
    """The body with its absolute links for the client that reached the page at `page_url`."""
    if not rendered.per_client:  # known when rendered: no search through a page of MBs
        return rendered
    files_url = urljoin(page_url, "../../files/")
    if rendered.media_type.startswith(Format.JSON.value):
        text = json.dumps(files_url)[1:-1]
    else:
        text = escape(files_url)
    body = rendered.body.replace(FILES_URL.encode(), text.encode())
    return Rendered(body, rendered.media_type, _etag(body))


def render_project(page: ProjectPage, fmt: Format) -> Rendered:
    per_client = any(link.provenance for link in page.files)
    if fmt is Format.JSON:
        return _rendered(_project_json(page), fmt, per_client)
    return _rendered(_project_html(page), fmt, per_client)


def render_project_list(names: Iterable[NormalizedName], fmt: Format) -> Rendered:
    ordered = sorted(names)
    if fmt is Format.JSON:
        doc = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in ordered]}
        return _rendered(json.dumps(doc, separators=(",", ":")), fmt)
    anchors = "".join(f'<a href="{n}/">{n}</a>\n' for n in ordered)
    return _rendered(_html_document("Simple index", anchors), fmt)


def _html_document(title: str, anchors: str, meta: Iterable[tuple[str, str]] = ()) -> str:
    tags = "".join(f'<meta name="{name}" content="{escape(value)}">\n' for name, value in meta)
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n{tags}'
        f"<title>{escape(title)}</title>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n"
        f"{anchors}</body>\n</html>\n"
    )


def _project_html(page: ProjectPage) -> str:
    meta = []
    if page.status is not None:
        meta.append(("pypi:project-status", page.status.status))
        if page.status.reason:
            meta.append(("pypi:project-status-reason", page.status.reason))
    meta += [("pypi:tracks", url) for url in page.tracks]
    meta += [("pypi:alternate-locations", url) for url in page.alternate_locations]
    anchors = "".join(_anchor(page.name, f) for f in page.files)
    return _html_document(f"Links for {page.name}", anchors, meta)


def _anchor(project: NormalizedName, link: FileLink) -> str:
    href = file_href(project, link.filename)
    if link.sha256:
        href += f"#sha256={link.sha256}"
    attrs = [f'href="{escape(href)}"']
    if link.requires_python:
        attrs.append(f'data-requires-python="{escape(link.requires_python)}"')
    if link.yanked is not False:
        # Always with a value: pip reads a bare `data-yanked` as not yanked, uv as yanked.
        reason = "" if link.yanked is True else str(link.yanked)
        attrs.append(f'data-yanked="{escape(reason)}"')
    if link.offers_metadata:
        value = f"sha256={link.metadata_sha256}" if link.metadata_sha256 else "true"
        attrs.append(f'data-core-metadata="{value}" data-dist-info-metadata="{value}"')
    if link.provenance:
        attrs.append(f'data-provenance="{_provenance_href(project, link.filename)}"')
    return f"<a {' '.join(attrs)}>{escape(link.filename)}</a><br>\n"


def _project_json(page: ProjectPage) -> str:
    files = []
    for link in page.files:
        entry: dict[str, object] = {
            "filename": link.filename,
            "url": file_href(page.name, link.filename),
            "hashes": {"sha256": link.sha256} if link.sha256 else {},
            "requires-python": link.requires_python,
            "yanked": link.yanked,
        }
        if link.size is not None:
            entry["size"] = link.size
        if link.upload_time:
            entry["upload-time"] = link.upload_time
        if link.offers_metadata:
            metadata = {"sha256": link.metadata_sha256} if link.metadata_sha256 else True
            entry["core-metadata"] = entry["dist-info-metadata"] = metadata
        if link.provenance:
            entry["provenance"] = _provenance_href(page.name, link.filename)
        files.append(entry)
    meta: dict[str, object] = {"api-version": API_VERSION}
    if page.tracks:
        meta["tracks"] = list(page.tracks)
    doc: dict[str, object] = {"meta": meta, "name": page.name}
    if page.status is not None:
        status = {"status": page.status.status}
        if page.status.reason:
            status["reason"] = page.status.reason
        doc["project-status"] = status
    if page.alternate_locations:
        doc["alternate-locations"] = list(page.alternate_locations)
    doc |= {"versions": versions(page), "files": files}
    return json.dumps(doc, separators=(",", ":"))


def versions(page: ProjectPage) -> list[str]:
    """PEP 700's `versions`: every version the files name, in ascending order."""
    found: dict[Version, str] = {}
    for link in page.files:
        parsed = name_and_version(link.filename)
        if parsed is not None:
            found.setdefault(parsed[1], str(parsed[1]))
    return [found[v] for v in sorted(found)]
