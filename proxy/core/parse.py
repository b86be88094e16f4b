"""Upstream bodies (PEP 503 HTML or PEP 691 JSON) into the model: the entry points, and the
JSON (HTML is `parse_html`).

Every function takes the body and the URL it was finally served from (after redirects), since
relative links are only meaningful against that URL. The format is sniffed from the body:
some mirrors label JSON as `application/octet-stream`.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Iterable
from typing import Any

from .model import (
    FileLink,
    InvalidName,
    NormalizedName,
    ProjectPage,
    Yanked,
    name_and_version,
    normalize,
)
from .parse_html import html_document, parse_html_page
from .parse_values import (
    ParseError,
    decode,
    filename_from_url,
    http_url,
    is_plain_filename,
    project_status,
    strip_fragment,
    urls,
    valid_sha256,
)
from .units import upload_time

__all__ = [
    "ParseError",
    "is_json",
    "parse_flat_listing",
    "parse_project_list",
    "parse_project_page",
]


def is_json(body: bytes) -> bool:
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


# Files one page may list, unless the caller says otherwise (`limits.page_links`); numpy's
# page lists about 4,400.
MAX_LINKS = 200_000


def parse_project_page(
    name: NormalizedName, body: bytes, url: str, max_links: int = MAX_LINKS
) -> ProjectPage:
    if is_json(body):
        page = _parse_json_page(name, body, url, max_links)
    else:
        page = parse_html_page(name, body, url, max_links)
    files: dict[str, FileLink] = {}
    for link in page.files:
        # A filename listed twice (some mirrors do) keeps its first entry, as pip would.
        files.setdefault(link.filename, link)
    return dataclasses.replace(page, files=tuple(files.values()))


def parse_flat_listing(
    body: bytes, url: str, max_links: int = MAX_LINKS
) -> dict[NormalizedName, ProjectPage]:
    """A find-links page (links to every file of every project) as project pages, each
    file's project taken from its filename."""
    files: dict[NormalizedName, dict[str, FileLink]] = {}
    for link in html_document(body, url, max_links).links:
        parsed = name_and_version(link.filename)
        if parsed is not None:
            files.setdefault(parsed[0], {}).setdefault(link.filename, link)
    return {name: ProjectPage(name, tuple(links.values())) for name, links in files.items()}


def parse_project_list(body: bytes) -> set[NormalizedName]:
    """Names of an index root. The official index's root names ~700,000 projects, so the HTML
    path is one regular expression over the anchors' text, not a full parse."""
    if is_json(body):
        data = _load_json(body)
        candidates: Iterable[str] = (
            p.get("name", "") if isinstance(p, dict) else ""
            for p in _expect(data.get("projects"), list, "projects")
        )
    else:
        text = decode(body)
        candidates = (html.unescape(m) for m in _ANCHOR_TEXT.findall(text))
    names = set()
    for candidate in candidates:
        try:
            names.add(normalize(candidate.strip()))
        except (InvalidName, AttributeError):
            continue
    return names


# `[^<>]`, not `[^>]`: an anchor never closed stops at the next tag, so the scan stays linear.
_ANCHOR_TEXT = re.compile(r"<a\b[^<>]*>([^<]*)</a>", re.IGNORECASE)


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ParseError(f"invalid JSON: {exc}") from None
    document: dict[str, Any] = _expect(data, dict, "document")
    return document


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise ParseError(f"{what}: expected {kind.__name__}, got {type(value).__name__}")
    return value


# -- PEP 691 JSON -------------------------------------------------------------------------


def _parse_json_page(name: NormalizedName, body: bytes, url: str, max_links: int) -> ProjectPage:
    data = _load_json(body)
    entries = _expect(data.get("files"), list, "files")
    if len(entries) > max_links:
        raise ParseError(f"{len(entries):,} files: more than the {max_links:,} a page may list")
    meta, said = data.get("meta"), data.get("project-status")
    meta = meta if isinstance(meta, dict) else {}
    said = said if isinstance(said, dict) else {}
    return ProjectPage(
        name,
        tuple(link for entry in entries if (link := _json_link(entry, url)) is not None),
        status=project_status(said.get("status"), said.get("reason")),
        tracks=urls(meta.get("tracks"), url),
        alternate_locations=urls(data.get("alternate-locations"), url),
    )


def _json_link(entry: Any, url: str) -> FileLink | None:
    """One file entry; None for one that is not a file, or has a field of the wrong type
    (dropped alone: one bad entry must not cost the page)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        return None
    hashes, size = entry.get("hashes", {}), entry.get("size")
    typed = (
        isinstance(hashes, dict)
        and _optional(entry.get("filename"), str)
        and _optional(entry.get("requires-python"), str)
        and _optional(entry.get("upload-time"), str)
        and _optional(entry.get("provenance"), str)
        and isinstance(entry.get("yanked", False), (bool, str))
        and (size is None or (isinstance(size, int) and not isinstance(size, bool)))
    )
    if not typed:
        return None
    file_url = http_url(url, entry["url"])
    if file_url is None:
        return None
    filename = entry.get("filename") or filename_from_url(file_url)
    if not is_plain_filename(filename):
        return None
    metadata = entry.get("core-metadata", entry.get("dist-info-metadata"))
    provenance = entry.get("provenance")
    return FileLink(
        filename=filename,
        url=strip_fragment(file_url),
        sha256=valid_sha256(hashes.get("sha256")),
        requires_python=entry.get("requires-python") or None,
        yanked=_json_yanked(entry.get("yanked", False)),
        size=size if size is not None and size >= 0 else None,
        # One that cannot be read is none at all: the proxy then gives the file its own.
        upload_time=entry.get("upload-time") if upload_time(entry.get("upload-time")) else None,
        metadata_sha256=_json_metadata(metadata),
        provenance=http_url(url, provenance) if provenance else None,
    )


def _optional(value: Any, kind: type) -> bool:
    return value is None or isinstance(value, kind)


def _json_yanked(value: Any) -> Yanked:
    if isinstance(value, str):
        return value or True
    return bool(value)


def _json_metadata(value: Any) -> str | None:
    if isinstance(value, dict):
        return valid_sha256(value.get("sha256")) or ""
    return "" if value is True else None
