"""Reading a wheel's core metadata (`<name>-<version>.dist-info/METADATA`) out of the wheel."""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import IO, Any, cast

from packaging.utils import InvalidWheelFilename, canonicalize_name

from .model import parse_wheel


class NoMetadata(ValueError):
    """The file is not a wheel with a readable METADATA entry."""


# Bytes a METADATA may have, inflated, unless the caller says otherwise (`limits.metadata_size`).
METADATA_LIMIT = 16 * 2**20


def core_metadata(
    wheel: IO[bytes] | SparseFile, filename: str, limit: int = METADATA_LIMIT
) -> bytes:
    """The METADATA bytes, exactly as stored: PEP 658 asks that the `.metadata` file served
    for a wheel equals them, so clients can check one against the other. At most `limit`
    bytes decompressed (a wheel is untrusted: its entry may claim any size, and inflate to
    any). From a `SparseFile`, this raises `Missing` for bytes it still needs."""
    try:
        name = parse_wheel(filename)[0]
    except InvalidWheelFilename as exc:
        raise NoMetadata(str(exc)) from None
    try:
        with zipfile.ZipFile(cast(IO[bytes], wheel)) as archive:
            for entry in archive.namelist():
                folder, _, leaf = entry.partition("/")
                if leaf == "METADATA" and folder.endswith(".dist-info"):
                    dist = folder.removesuffix(".dist-info").rpartition("-")[0]
                    if canonicalize_name(dist) == name:
                        return _read(archive, entry, limit)
    except Missing:
        raise
    # RuntimeError: an encrypted entry, NotImplementedError: a compression zipfile lacks.
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        KeyError,
        EOFError,
        ValueError,
        RuntimeError,
    ) as exc:
        raise NoMetadata(f"{filename}: {exc}") from None
    raise NoMetadata(f"{filename}: no {name} .dist-info/METADATA in the wheel")


def _read(archive: zipfile.ZipFile, entry: str, limit: int) -> bytes:
    with archive.open(entry) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise NoMetadata(f"{entry}: larger than {limit:,} bytes")
    return data


class Missing(Exception):
    """Reading the wheel needs bytes `start` to `end` (exclusive), which are not there yet."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__(f"bytes {start}-{end - 1}")
        self.start, self.end = start, end


class SparseFile(io.RawIOBase):
    """A file of `size` bytes of which only some pieces are known, for `zipfile` to read a
    wheel's central directory and one entry without the rest: a read of bytes not known yet
    raises `Missing`, so the caller fetches them and tries again."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pieces: dict[int, bytes] = {}
        self._position = 0

    def add(self, start: int, data: bytes) -> None:
        self.pieces[start] = data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self._position + size, self.size)
        start = self._position
        for piece_start, data in self.pieces.items():
            if piece_start <= start and end <= piece_start + len(data):
                self._position = end
                return data[start - piece_start : end - piece_start]
        if start >= end:
            return b""
        raise Missing(start, end)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
