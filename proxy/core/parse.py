"""Upstream bodies (PEP 503 HTML or PEP 691 JSON) into the model.

Every function takes the body and the URL it was finally served from (after redirects), since
relative links are only meaningful against that URL. The format is sniffed from the body:
some mirrors label JSON as `application/octet-stream`.
"""

from __future__ import annotations

import html
import json
import posixpath
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from .model import (
    FileLink,
    InvalidName,
    NormalizedName,
    ProjectPage,
    Yanked,
    name_and_version,
    normalize,
)


class ParseError(ValueError):
    """An upstream body that is not a simple index page."""


def is_json(body: bytes) -> bool:
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def parse_project_page(name: NormalizedName, body: bytes, url: str) -> ProjectPage:
    raw = _parse_json_files(body, url) if is_json(body) else _parse_html_files(body, url)
    files: dict[str, FileLink] = {}
    for link in raw:
        # A filename listed twice (some mirrors do) keeps its first entry, as pip would.
        files.setdefault(link.filename, link)
    return ProjectPage(name=name, files=tuple(files.values()))


def parse_flat_listing(body: bytes, url: str) -> dict[NormalizedName, ProjectPage]:
    """A find-links page (links to every file of every project) as project pages, each
    file's project taken from its filename."""
    files: dict[NormalizedName, dict[str, FileLink]] = {}
    for link in _parse_html_files(body, url):
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
            p.get("name", "") for p in _expect(data.get("projects"), list, "projects")
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


_ANCHOR_TEXT = re.compile(r"<a\b[^>]*>([^<]*)</a>", re.IGNORECASE)


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ParseError(f"invalid JSON: {exc}") from None
    document: dict[str, Any] = _expect(data, dict, "document")
    return document


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise ParseError(f"{what}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _parse_json_files(body: bytes, url: str) -> list[FileLink]:
    data = _load_json(body)
    links = []
    for entry in _expect(data.get("files"), list, "files"):
        _expect(entry, dict, "file entry")
        href = entry.get("url")
        if not isinstance(href, str):
            continue
        file_url = urljoin(url, href)
        filename = entry.get("filename") or _filename_from_url(file_url)
        if not _is_plain_filename(filename):
            continue
        hashes = entry.get("hashes") or {}
        metadata = entry.get("core-metadata", entry.get("dist-info-metadata"))
        size = entry.get("size")
        links.append(
            FileLink(
                filename=filename,
                url=_strip_fragment(file_url),
                sha256=_valid_sha256(hashes.get("sha256")),
                requires_python=entry.get("requires-python") or None,
                yanked=_json_yanked(entry.get("yanked", False)),
                size=size if isinstance(size, int) and size >= 0 else None,
                upload_time=entry.get("upload-time") or None,
                metadata_sha256=_json_metadata(metadata),
            )
        )
    return links


def _json_yanked(value: Any) -> Yanked:
    if isinstance(value, str):
        return value or True
    return bool(value)


def _json_metadata(value: Any) -> str | None:
    if isinstance(value, dict):
        return _valid_sha256(value.get("sha256")) or ""
    return "" if value is True else None


def _decode(body: bytes) -> str:
    # Strict: index pages are ASCII in practice, so a byte that is not UTF-8 is a body
    # damaged on the way, and another mirror should be asked.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8: {exc}") from None


def _parse_html_files(body: bytes, url: str) -> list[FileLink]:
    parser = _AnchorParser()
    parser.feed(_decode(body))
    parser.close()
    base = urljoin(url, parser.base) if parser.base else url
    links = []
    for attrs in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        file_url = urljoin(base, href)
        filename = _filename_from_url(file_url)
        if not _is_plain_filename(filename):
            continue
        fragment = dict(_fragment_pairs(file_url))
        yanked = attrs.get("data-yanked")
        metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        links.append(
            FileLink(
                filename=filename,
                url=_strip_fragment(file_url),
                sha256=_valid_sha256(fragment.get("sha256")),
                requires_python=attrs.get("data-requires-python") or None,
                # Present means yanked (PEP 592); an empty value is a yank without a reason.
                yanked=False if yanked is None else (yanked or True),
                metadata_sha256=_html_metadata(metadata),
            )
        )
    return links


def _html_metadata(value: str | None) -> str | None:
    if value is None:
        return None
    algorithm, _, digest = value.partition("=")
    return (_valid_sha256(digest) or "") if algorithm == "sha256" else ""


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            # A bare attribute (`data-yanked`) comes as None; keep it distinguishable from
            # an absent one.
            self.anchors.append({k: ("" if v is None else v) for k, v in attrs})
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")


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
