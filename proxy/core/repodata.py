"""What the proxy reads out of conda index files, and the one change it makes to them.

Repodata can be hundreds of MB, so none of this holds a whole document: records come one at a
time (from a streaming parser, see `server.conda_files`), and the locations in it are
rewritten on the bytes as they pass (`relocated`), everything else left byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from .conda_channels import BASE_URL, SHARDS_BASE_URL, is_package_filename

# The keys that say where packages and shards are (CEP-15, CEP-16), and what they become.
LOCATIONS = {"base_url": BASE_URL, "shards_base_url": SHARDS_BASE_URL}
# One of those keys and its string value. A quote preceded by a backslash is inside a string,
# so a key-shaped run of text in a value never matches; every other quote before `base_url`
# opens a key (after a closing quote, JSON allows no bare text).
_LOCATION = re.compile(rb'(?<!\\)"(base_url|shards_base_url)"(\s*:\s*)"((?:[^"\\]|\\.)*)"')
# The start of one, cut off by the end of what has arrived.
_CUT = re.compile(rb'(?<!\\)"(?:base_url|shards_base_url)"\s*(?::\s*(?:"(?:[^"\\]|\\.)*\\?)?)?\Z')
# Bytes held back at the end of a chunk: enough for a key cut in two; and the most held for
# one value still arriving (no location is that long: past it, the bytes pass unchanged).
_TAIL = 32
_LONGEST = 2**20


class PackageRecord(NamedTuple):
    """One package a channel's subdir lists, with what its download is checked against (a
    tuple: hundreds of thousands are made per repodata, and go to SQLite as rows)."""

    filename: str
    sha256: str | None
    md5: str | None
    size: int | None


def record_of(filename: Any, fields: Mapping[str, Any]) -> PackageRecord | None:
    """The record of a repodata entry (JSON: hex strings; a shard's msgpack: bytes); None for
    one that names no package file or gives no hash to check it by."""
    if not isinstance(filename, str) or not is_package_filename(filename):
        return None
    sha256, md5 = _hex(fields.get("sha256"), 64), _hex(fields.get("md5"), 32)
    if sha256 is None and md5 is None:
        return None
    size = fields.get("size")
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    return PackageRecord(filename, sha256, md5, size)


def _hex(value: Any, length: int) -> str | None:
    """`length` hex digits, lowercase (from bytes of half that many); None for anything else.
    `bytes.fromhex` checks the digits (a record at a time, hundreds of thousands of them:
    faster than a pattern); it skips whitespace, which the byte count then gives away."""
    if isinstance(value, bytes):
        return value.hex() if len(value) * 2 == length else None
    if not isinstance(value, str) or len(value) != length:
        return None
    try:
        return value.lower() if len(bytes.fromhex(value)) * 2 == length else None
    except ValueError:
        return None


def relocated(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A JSON document's bytes with every `base_url` and `shards_base_url` value replaced by
    its relative form (`LOCATIONS`), and nothing else changed; chunk boundaries anywhere."""
    held = b""
    for chunk in chunks:
        done, held = _rewritten(held + chunk, final=False)
        if done:
            yield done
    done, _ = _rewritten(held, final=True)
    if done:
        yield done


def _rewritten(buffer: bytes, *, final: bool) -> tuple[bytes, bytes]:
    """The part of `buffer` that can be passed on, rewritten, and the rest to hold: from a
    key whose value has not fully arrived, or the last few bytes (a key may start there)."""
    parts, end = [], 0
    for match in _LOCATION.finditer(buffer):
        key = match[1].decode()
        value = json.dumps(LOCATIONS[key]).encode()
        parts += [buffer[end : match.start()], b'"', match[1], b'"', match[2], value]
        end = match.end()
    if final:
        return b"".join([*parts, buffer[end:]]), b""
    cut = _CUT.search(buffer, max(end, len(buffer) - _LONGEST))
    hold = cut.start() if cut else max(end, len(buffer) - _TAIL)
    parts.append(buffer[end:hold])
    return b"".join(parts), buffer[hold:]
