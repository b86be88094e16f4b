"""Upstream bodies (PEP 503 HTML or PEP 691 JSON) into the model.

Every function takes the body and the URL it was finally served from (after redirects), since
relative links are only meaningful against that URL. The format is sniffed from the body:
some mirrors label JSON as `application/octet-stream`.
"""

from __future__ import annotations

import dataclasses
import html
import json
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from .html_tags import Attributes, tags
from .model import (
    FileLink,
    InvalidName,
    NormalizedName,
    ProjectPage,
    ProjectStatus,
    Yanked,
    name_and_version,
    normalize,
)
from .units import upload_time


class ParseError(ValueError):
    """An upstream body that is not a simple index page."""


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
        page = _parse_html_page(name, body, url, max_links)
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
    for link in _html_document(body, url, max_links).links:
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
        text = _decode(body)
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
    meta, status = data.get("meta"), data.get("project-status")
    meta = meta if isinstance(meta, dict) else {}
    status = status if isinstance(status, dict) else {}
    return ProjectPage(
        name,
        tuple(link for entry in entries if (link := _json_link(entry, url)) is not None),
        status=_status(status.get("status"), status.get("reason")),
        tracks=_urls(meta.get("tracks"), url),
        alternate_locations=_urls(data.get("alternate-locations"), url),
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
    file_url = _http_url(url, entry["url"])
    if file_url is None:
        return None
    filename = entry.get("filename") or _filename_from_url(file_url)
    if not _is_plain_filename(filename):
        return None
    metadata = entry.get("core-metadata", entry.get("dist-info-metadata"))
    provenance = entry.get("provenance")
    return FileLink(
        filename=filename,
        url=_strip_fragment(file_url),
        sha256=_valid_sha256(hashes.get("sha256")),
        requires_python=entry.get("requires-python") or None,
        yanked=_json_yanked(entry.get("yanked", False)),
        size=size if size is not None and size >= 0 else None,
        # One that cannot be read is none at all: the proxy then gives the file its own.
        upload_time=entry.get("upload-time") if upload_time(entry.get("upload-time")) else None,
        metadata_sha256=_json_metadata(metadata),
        provenance=_http_url(url, provenance) if provenance else None,
    )


def _optional(value: Any, kind: type) -> bool:
    return value is None or isinstance(value, kind)


def _json_yanked(value: Any) -> Yanked:
    if isinstance(value, str):
        return value or True
    return bool(value)


def _json_metadata(value: Any) -> str | None:
    if isinstance(value, dict):
        return _valid_sha256(value.get("sha256")) or ""
    return "" if value is True else None


def _status(status: Any, reason: Any) -> ProjectStatus | None:
    if not isinstance(status, str) or not status:
        return None
    return ProjectStatus(status, reason if isinstance(reason, str) and reason else None)


def _urls(values: Any, base: str) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    joined = (_http_url(base, v) for v in values if isinstance(v, str))
    return tuple(u for u in joined if u)


def _http_url(base: str, href: str) -> str | None:
    """`href` made absolute against `base`, if it is an http(s) URL at all (a malformed one,
    such as `http://[::1`, is dropped alone)."""
    try:
        url = urljoin(base, href)
        return url if urlsplit(url).scheme in ("http", "https") else None
    except ValueError:
        return None


# -- PEP 503 HTML -------------------------------------------------------------------------


def _decode(body: bytes) -> str:
    # Strict: index pages are ASCII in practice, so a byte that is not UTF-8 is a body
    # damaged on the way, and another mirror should be asked.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8: {exc}") from None


@dataclass(frozen=True)
class _HtmlDocument:
    links: list[FileLink]
    meta: dict[str, list[str]]  # <meta name=... content=...>, by name


def _html_document(body: bytes, url: str, max_links: int) -> _HtmlDocument:
    anchors: list[Attributes] = []
    meta: dict[str, list[str]] = {}
    base: str | None = None
    for tag, attrs in tags(_decode(body)):
        if tag == "a":
            if len(anchors) == max_links:
                raise ParseError(f"more than the {max_links:,} links a page may list")
            anchors.append(attrs)
        elif tag == "base" and base is None:
            base = attrs.get("href")
        elif tag == "meta" and "name" in attrs:
            meta.setdefault(attrs["name"].lower(), []).append(attrs.get("content", ""))
    base_url = (_http_url(url, base) or url) if base else url
    links = [link for attrs in anchors if (link := _html_link(attrs, base_url)) is not None]
    return _HtmlDocument(links, meta)


def _parse_html_page(name: NormalizedName, body: bytes, url: str, max_links: int) -> ProjectPage:
    document = _html_document(body, url, max_links)
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
        status=_status(statuses[0], reasons[0] if reasons else None) if statuses else None,
        tracks=_urls(meta.get("pypi:tracks"), url),
        alternate_locations=_urls(meta.get("pypi:alternate-locations"), url),
    )


def _html_link(attrs: Attributes, base: str) -> FileLink | None:
    href = attrs.get("href")
    if not href:
        return None
    file_url = _http_url(base, href)
    if file_url is None:
        return None
    filename = _filename_from_url(file_url)
    if not _is_plain_filename(filename):
        return None
    fragment = dict(_fragment_pairs(file_url))
    yanked = attrs.get("data-yanked")
    metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
    provenance = attrs.get("data-provenance")
    return FileLink(
        filename=filename,
        url=_strip_fragment(file_url),
        sha256=_valid_sha256(fragment.get("sha256")),
        requires_python=attrs.get("data-requires-python") or None,
        # Present means yanked (PEP 592); an empty value is a yank without a reason.
        yanked=False if yanked is None else (yanked or True),
        metadata_sha256=_html_metadata(metadata),
        provenance=_http_url(base, provenance) if provenance else None,
    )


def _html_metadata(value: str | None) -> str | None:
    if value is None:
        return None
    algorithm, _, digest = value.partition("=")
    return (_valid_sha256(digest) or "") if algorithm == "sha256" else ""


def _filename_from_url(url: str) -> str:
    return unquote(posixpath.basename(urlsplit(url).path))


_UNSAFE_IN_FILENAME = re.compile(r"[/\\\x00-\x1f]")


def _is_plain_filename(filename: str) -> bool:
    return filename not in ("", ".", "..") and not _UNSAFE_IN_FILENAME.search(filename)


def _strip_fragment(url: str) -> str:
    return url.partition("#")[0]


def _fragment_pairs(url: str) -> Iterable[tuple[str, str]]:
    fragment = urlsplit(url).fragment
    for part in fragment.split("&"):
        key, sep, value = part.partition("=")
        if sep:
            yield key.lower(), value


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _valid_sha256(value: Any) -> str | None:
    if isinstance(value, str) and _SHA256.fullmatch(value.lower()):
        return value.lower()
    return None
