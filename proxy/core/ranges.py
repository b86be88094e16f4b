"""The one byte range a `Range` header asks for (RFC 9110), or none to honour."""

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
