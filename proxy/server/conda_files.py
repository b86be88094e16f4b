"""A conda index file just downloaded: made ready to serve (`prepare`: its locations made
relative if it has any, see `core.repodata`, else the upstream's bytes as they came), and its
packages read out into the listing one record at a time (`list_records`: seconds for a
repodata of hundreds of MB, so done after it is served). Both in worker threads; memory stays
flat whatever the size: every pass streams.
"""

from __future__ import annotations

import bz2
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ijson  # type: ignore[import-untyped]
import msgpack  # type: ignore[import-untyped]
import zstandard

from ..core.conda_channels import BASE_URL, SHARD_INDEX, SHARDS_BASE_URL
from ..core.repodata import LOCATIONS, PackageRecord, record_of, relocated

CHUNK = 1024 * 1024
# The sections of a repodata that list packages: `.tar.bz2` files, and `.conda` ones.
_SECTIONS = ("packages", "packages.conda")


class BadIndexFile(ValueError):
    """Bytes that are not the index file they were asked as (the reason why)."""


@dataclass(frozen=True)
class Prepared:
    """What to serve (the download itself, or a rewritten copy beside it), and where the
    document said its packages and shards are, as the upstream wrote it (None: beside it)."""

    served: Path
    base_url: str | None = None
    shards_base_url: str | None = None
    shards: tuple[str, ...] = ()  # a shard index's: the sha256 of every shard it names


Records = Callable[[Iterable[PackageRecord]], object]


def prepare(filename: str, raw: Path, limit: int) -> Prepared:
    """Make `raw`, an upstream's `filename`, ready to serve; at most `limit` bytes
    decompressed. BadIndexFile for one that is not an index file (an error document that
    came with a 200 has no `info`)."""
    with _readable(filename):
        if filename == SHARD_INDEX:
            return _shard_index(raw, limit)
        return _repodata(filename, raw, limit)


def list_records(filename: str, path: Path, limit: int, listed: Records) -> int:
    """Hand every package a repodata (`filename`, served at `path`) lists to `listed`, some
    at a time; how many. BadIndexFile if it breaks off or does not parse on the way."""
    count = 0
    with _readable(filename):
        for section in _SECTIONS:  # a pass each: a record at a time, whatever the order
            with open(path, "rb") as f, _decompressed(f, filename, limit) as data:
                for batch in _batches(ijson.kvitems(data, section)):
                    listed(batch)
                    count += len(batch)
    return count


def read_shard(path: Path, limit: int) -> list[PackageRecord]:
    """The packages a shard (`shards/<sha256>.msgpack.zst`) lists."""
    with _readable("shard"), open(path, "rb") as f, _decompressed(f, "x.zst", limit) as data:
        shard = msgpack.unpackb(data.read(), raw=False, strict_map_key=False)
    return list(_shard_records(shard))


def _repodata(filename: str, raw: Path, limit: int) -> Prepared:
    with open(raw, "rb") as f, _decompressed(f, filename, limit) as data:
        info: Any = next(ijson.items(data, "info"), None)  # at the start, as indexers write it
    if not isinstance(info, dict):
        raise BadIndexFile(f"{filename}: no info in it")
    prepared = Prepared(raw, _text(info.get("base_url")), _text(info.get("shards_base_url")))
    if not any(key in info for key in LOCATIONS):
        return prepared  # byte for byte
    with (
        _written(raw) as served,
        open(raw, "rb") as f,
        _decompressed(f, filename, limit) as data,
        open(served, "wb") as out,
        _compressed(out, filename) as sink,
    ):
        for chunk in relocated(iter(lambda: data.read(CHUNK), b"")):
            sink.write(chunk)
    return Prepared(served, prepared.base_url, prepared.shards_base_url)


def _batches(pairs: Iterable[tuple[Any, Any]], size: int = 10_000) -> Iterator[list[PackageRecord]]:
    """The package records among a section's (filename, fields) pairs, some at a time."""
    batch: list[PackageRecord] = []
    for name, fields in pairs:
        if isinstance(fields, dict) and (record := record_of(name, fields)) is not None:
            batch.append(record)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def _shard_index(raw: Path, limit: int) -> Prepared:
    """The CEP-16 index of a subdir's shards: small (a name and a hash per package name), so
    read whole; written anew only to make its locations relative."""
    with open(raw, "rb") as f, _decompressed(f, "x.zst", limit) as data:
        index = msgpack.unpackb(data.read(), raw=False, strict_map_key=False)
    if not isinstance(index, dict) or not isinstance(index.get("shards"), dict):
        raise BadIndexFile("repodata_shards.msgpack.zst: no shards in it")
    info: dict[str, Any] = index["info"] if isinstance(index.get("info"), dict) else {}
    base, shards = _text(info.get("base_url")), _text(info.get("shards_base_url"))
    named = tuple(
        h.hex() for h in index["shards"].values() if isinstance(h, bytes) and len(h) == 32
    )
    if base in (None, BASE_URL) and shards in (None, SHARDS_BASE_URL):
        return Prepared(raw, base, shards, named)
    index["info"] = {**info, **LOCATIONS}
    with _written(raw) as served:
        served.write_bytes(zstandard.ZstdCompressor().compress(msgpack.packb(index)))
    return Prepared(served, base, shards, named)


def _shard_records(shard: Any) -> Iterator[PackageRecord]:
    if not isinstance(shard, dict):
        raise BadIndexFile("shard: not a map")
    for section in _SECTIONS:
        entries = shard.get(section) or {}
        if isinstance(entries, dict):
            for name, fields in entries.items():
                if isinstance(fields, dict) and (r := record_of(name, fields)) is not None:
                    yield r


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# Every way a broken or hostile body breaks the readers.
_UNREADABLE = (ijson.JSONError, ValueError, TypeError, zstandard.ZstdError, msgpack.UnpackException,
               OSError, EOFError)  # fmt: skip


@contextlib.contextmanager
def _written(raw: Path) -> Iterator[Path]:
    """The rewritten copy of `raw` beside it, removed if it could not be made whole."""
    served = raw.with_name(raw.name + ".served")
    try:
        yield served
    except BaseException:
        served.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _readable(what: str) -> Iterator[None]:
    """What breaks a reader of `what`, as BadIndexFile."""
    try:
        yield
    except BadIndexFile:
        raise
    except _UNREADABLE as exc:
        raise BadIndexFile(f"{what}: {type(exc).__name__}: {exc}") from None


class _Bounded:
    """A readable stream that fails past `limit` bytes (a decompression bomb stops there)."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream, self._left = stream, limit

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if size >= 0 else self._left + 1)
        self._left -= len(data)
        if self._left < 0:
            raise BadIndexFile("larger than limits.repodata_size once decompressed")
        return data


@contextlib.contextmanager
def _decompressed(f: IO[bytes], filename: str, limit: int) -> Iterator[_Bounded]:
    if filename.endswith(".zst"):
        with zstandard.ZstdDecompressor().stream_reader(f, closefd=False) as reader:
            yield _Bounded(reader, limit)
    elif filename.endswith(".bz2"):
        with bz2.open(f, "rb") as reader:
            yield _Bounded(reader, limit)
    else:
        yield _Bounded(f, limit)


@contextlib.contextmanager
def _compressed(out: IO[bytes], filename: str) -> Iterator[IO[bytes]]:
    if filename.endswith(".zst"):
        with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as writer:
            yield writer
    elif filename.endswith(".bz2"):
        with bz2.open(out, "wb") as writer:
            yield writer
    else:
        yield out
    out.flush()
    os.fsync(out.fileno())
