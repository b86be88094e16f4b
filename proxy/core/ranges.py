"""Byte ranges (RFC 9110): the one a client's `Range` asks for; where an upstream 206 starts."""

from __future__ import annotations

import re

_SPEC = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


class Unsatisfiable(ValueError):
    """The range starts beyond the end of the file: answer 416."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`(start, end)`, end exclusive, clipped to the file; None when there is no single
    well-formed byte range (absent, several ranges, another unit, malformed): the whole file
    is then the answer."""
    if header is None:
        return None
    match = _SPEC.fullmatch(header)
    if match is None:
        return None
    first, last = match[1], match[2]
    if not first:
        if not last:
            return None
        suffix = int(last)  # the last N bytes
        if suffix == 0:
            raise Unsatisfiable(header)
        return max(size - suffix, 0), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable(header)
    return start, end


def content_range(header: str) -> tuple[int | None, int | None]:
    """Where a 206's body starts, and the file's size: `bytes 100-199/1000` -> (100, 1000);
    what is missing or unreadable is None."""
    unit, _, spec = header.partition(" ")
    span, _, total = spec.partition("/")
    if unit != "bytes":
        return None, None
    return digits(span.partition("-")[0]), digits(total)


def digits(value: str | None) -> int | None:
    """A header's whole number (`Content-Length`), or None."""
    return int(value) if value and value.isdigit() else None
