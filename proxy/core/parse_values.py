"""What the parsers of upstream bodies (`parse`, `parse_html`) read alike: URLs and the
filenames, hashes and statuses found in them, each checked, and the one error they raise."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from .local_folders import is_local
from .model import ProjectStatus


class ParseError(ValueError):
    """An upstream body that is not a simple index page."""


def project_status(value: Any, reason: Any) -> ProjectStatus | None:
    """PEP 792's status and its reason, if the status is a string at all."""
    if not isinstance(value, str) or not value:
        return None
    return ProjectStatus(value, reason if isinstance(reason, str) and reason else None)


def urls(values: Any, base: str) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    joined = (http_url(base, v) for v in values if isinstance(v, str))
    return tuple(u for u in joined if u)


def http_url(base: str, href: str) -> str | None:
    """`href` made absolute against `base`, if it is an http(s) URL at all (a malformed one,
    such as `http://[::1`, is dropped alone), or a local folder's link on that folder's own
    page (see `local_folders`): a page from the network never leads to a local path."""
    try:
        url = urljoin(base, href)
        scheme = urlsplit(url).scheme
    except ValueError:
        return None
    if scheme in ("http", "https"):
        return url
    return url if is_local(url) and is_local(base) else None


def decode(body: bytes) -> str:
    # Strict: index pages are ASCII in practice, so a byte that is not UTF-8 is a body
    # damaged on the way, and another mirror should be asked.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8: {exc}") from None


def filename_from_url(url: str) -> str:
    return unquote(posixpath.basename(urlsplit(url).path))


_UNSAFE_IN_FILENAME = re.compile(r"[/\\\x00-\x1f]")


def is_plain_filename(filename: str) -> bool:
    return filename not in ("", ".", "..") and not _UNSAFE_IN_FILENAME.search(filename)


def strip_fragment(url: str) -> str:
    return url.partition("#")[0]


def fragment_pairs(url: str) -> Iterable[tuple[str, str]]:
    fragment = urlsplit(url).fragment
    for part in fragment.split("&"):
        key, sep, value = part.partition("=")
        if sep:
            yield key.lower(), value


_SHA256 = re.compile(r"[0-9a-f]{64}")


def valid_sha256(value: Any) -> str | None:
    if isinstance(value, str) and _SHA256.fullmatch(value.lower()):
        return value.lower()
    return None
