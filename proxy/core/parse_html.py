"""PEP 503 HTML pages into the model: anchors (found in linear time, see `html_tags`) with
their `data-` attributes, and the `<meta>` tags of PEP 629, 708 and 792."""

from __future__ import annotations

from dataclasses import dataclass

from .html_tags import Attributes, tags
from .model import FileLink, NormalizedName, ProjectPage, name_and_version
from .parse_values import (
    ParseError,
    decode,
    filename_from_url,
    fragment_pairs,
    http_url,
    is_plain_filename,
    project_status,
    strip_fragment,
    urls,
    valid_sha256,
)


@dataclass(frozen=True)
class HtmlDocument:
    links: list[FileLink]
    meta: dict[str, list[str]]  # <meta name=... content=...>, by name


def html_document(body: bytes, url: str, max_links: int) -> HtmlDocument:
    anchors: list[Attributes] = []
    meta: dict[str, list[str]] = {}
    base: str | None = None
    for tag, attrs in tags(decode(body)):
        if tag == "a":
            if len(anchors) == max_links:
                raise ParseError(f"more than the {max_links:,} links a page may list")
            anchors.append(attrs)
        elif tag == "base" and base is None:
            base = attrs.get("href")
        elif tag == "meta" and "name" in attrs:
            meta.setdefault(attrs["name"].lower(), []).append(attrs.get("content", ""))
    base_url = (http_url(url, base) or url) if base else url
    links = [link for attrs in anchors if (link := _html_link(attrs, base_url)) is not None]
    return HtmlDocument(links, meta)


def parse_html_page(name: NormalizedName, body: bytes, url: str, max_links: int) -> ProjectPage:
    document = html_document(body, url, max_links)
    meta = document.meta
    distributions = any(name_and_version(link.filename) for link in document.links)
    if not distributions and "pypi:repository-version" not in meta:
        # A project page without files still names its repository version; a 200 with
        # neither is something else (a captive portal's login page, an error page), not a
        # project without files.
        raise ParseError("no links and no pypi:repository-version: not an index page")
    statuses = meta.get("pypi:project-status", [])
    reasons = meta.get("pypi:project-status-reason", [])
    return ProjectPage(
        name,
        tuple(document.links),
        status=project_status(statuses[0], reasons[0] if reasons else None) if statuses else None,
        tracks=urls(meta.get("pypi:tracks"), url),
        alternate_locations=urls(meta.get("pypi:alternate-locations"), url),
    )


def _html_link(attrs: Attributes, base: str) -> FileLink | None:
    href = attrs.get("href")
    if not href:
        return None
    file_url = http_url(base, href)
    if file_url is None:
        return None
    filename = filename_from_url(file_url)
    if not is_plain_filename(filename):
        return None
    fragment = dict(fragment_pairs(file_url))
    yanked = attrs.get("data-yanked")
    metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
    provenance = attrs.get("data-provenance")
    return FileLink(
        filename=filename,
        url=strip_fragment(file_url),
        sha256=valid_sha256(fragment.get("sha256")),
        requires_python=attrs.get("data-requires-python") or None,
        # Present means yanked (PEP 592); an empty value is a yank without a reason.
        yanked=False if yanked is None else (yanked or True),
        metadata_sha256=_html_metadata(metadata),
        provenance=http_url(base, provenance) if provenance else None,
    )


def _html_metadata(value: str | None) -> str | None:
    if value is None:
        return None
    algorithm, _, digest = value.partition("=")
    return (valid_sha256(digest) or "") if algorithm == "sha256" else ""
