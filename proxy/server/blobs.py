"""A content-addressed file store: `files/<aa>/<bb>/<sha256>`, written through `tmp/`.

No client string ever becomes a path here: the only names are sha256 digests (and keys made
of them) that the proxy computed or parsed and validated. A file appears under its final name
only after its bytes were verified, by one atomic rename, so a reader never sees a partial or
corrupt file. A download in progress is `tmp/<key>.part`, with its expected size, once known,
in `tmp/<key>.size`, where other worker processes can follow it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .locks import FileLocks

log = logging.getLogger("pypi_proxy.blobs")

_HEX64 = re.compile(r"[0-9a-f]{64}")


class BlobStore:
    """Files are kept while they fit: under `max_size` bytes in all, and leaving `min_free`
    bytes free on the disk. Beyond that the least recently used go first (a file's mtime is
    its last use: shared by every process, and one system call to keep)."""

    def __init__(self, root: Path, max_size: int | None = None, min_free: int = 0) -> None:
        self.files = root / "files"
        self.tmp = root / "tmp"
        self.files.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.max_size = max_size
        self.min_free = min_free
        # Files and bytes in files/, as far as this process knows (other processes add too).
        self._totals: tuple[int, int] | None = None
        # Told the sha256 of each file committed (in whichever thread commits it).
        self.committed: Callable[[str], None] = lambda sha256: None

    def path(self, sha256: str) -> Path:
        return self.files / sha256[:2] / sha256[2:4] / _checked(sha256)

    def find(self, sha256: str | None) -> Path | None:
        if sha256 is None:
            return None
        path = self.path(sha256)
        return path if path.is_file() else None

    def use(self, sha256: str | None) -> Path | None:
        """The stored file, marked as just used; None if there is none."""
        path = self.find(sha256)
        if path is not None:
            # Evicted meanwhile, or not ours to touch: it is served all the same.
            with contextlib.suppress(OSError):
                os.utime(path)
        return path

    def usage(self) -> int:
        """Bytes of the files in the store."""
        return self.totals()[1]

    def totals(self) -> tuple[int, int]:
        """How many files the store holds, and their bytes."""
        if self._totals is None:
            files = self.scan()
            self._totals = len(files), sum(size for _, size, _ in files)
        return self._totals

    def _added(self, path: Path, existed: bool) -> None:
        if self._totals is not None and not existed:
            count, usage = self._totals
            self._totals = count + 1, usage + path.stat().st_size
        self.committed(path.name)

    def has_room(self, size: int) -> bool:
        """Whether a file of `size` bytes fits now, without evicting anything."""
        if self.max_size is not None and self.usage() + size > self.max_size:
            return False
        return shutil.disk_usage(self.files).free - size >= self.min_free

    def make_room(self, size: int) -> bool:
        """Whether a file of `size` bytes fits, once least recently used files are evicted.
        Nothing is evicted for a file that would not fit even then: a listed size (which the
        upstream states) never empties the cache."""
        if self.has_room(size):
            return True
        if not self._fits_once_emptied(size):
            return False
        self.evict(size)
        return self.has_room(size)

    def _fits_once_emptied(self, size: int) -> bool:
        if self.max_size is not None and size > self.max_size:
            return False
        return shutil.disk_usage(self.files).free + self.usage() - size >= self.min_free

    def evict(self, room: int = 0, keep: Path | None = None, used_before: float = 0.0) -> int:
        """Remove least recently used files (but `keep`) until the store keeps its limits
        with `room` bytes to spare, and every file last used before `used_before` (a time
        stamp); the bytes freed. A file that is being read stays readable to its reader
        (POSIX), or is not removed (Windows)."""
        files = sorted(self.scan())
        usage = sum(size for _, size, _ in files)
        free = shutil.disk_usage(self.files).free
        freed = removed = 0
        for used, size, path in files:
            over = self.max_size is not None and usage - freed + room > self.max_size
            if used >= used_before and not over and free + freed - room >= self.min_free:
                break
            if path == keep:
                continue
            try:
                path.unlink()
            except OSError:
                continue
            freed += size
            removed += 1
            log.info("evicted %s (%d bytes)", path.name, size)
        self._totals = len(files) - removed, usage - freed
        return freed

    def verify(self, path: Path) -> bool | None:
        """Whether a stored file still has the sha256 it is named by (None: gone meanwhile)."""
        try:
            return file_sha256(path) == path.name
        except FileNotFoundError:
            return None

    def scan(self) -> list[tuple[float, int, Path]]:
        found = []
        for first in _subdirs(self.files):
            for second in _subdirs(first):
                for entry in os.scandir(second):
                    try:
                        stat = entry.stat()
                    except FileNotFoundError:
                        continue
                    found.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        return found

    # -- downloads in progress -----------------------------------------------------------

    def part(self, key: str) -> Path:
        return self.tmp / f"{_checked(key)}.part"

    def part_size(self, key: str) -> int | None:
        """How much of a download is written from its start without a gap: the part file's
        size, or the prefix a segmented download noted (it writes ahead at offsets)."""
        try:
            prefix = self._note(key, "prefix").read_text(encoding="ascii")
            return int(prefix)
        except FileNotFoundError:
            pass
        try:
            return self.part(key).stat().st_size
        except FileNotFoundError:
            return None

    def write_prefix(self, key: str, written: int | None) -> None:
        """Note how far a segmented download is verified, for other processes to follow
        (None: the part is written without a gap again, and its size says how far)."""
        if written is None:
            self._note(key, "prefix").unlink(missing_ok=True)
            return
        scratch = self._note(key, "prefix.new")
        scratch.write_text(str(written), encoding="ascii")
        os.replace(scratch, self._note(key, "prefix"))

    def settle_part(self, key: str) -> None:
        """Cut the part a segmented download left back to its noted prefix, so that whoever
        takes the download over finds only bytes written without a gap."""
        try:
            prefix = int(self._note(key, "prefix").read_text(encoding="ascii"))
        except FileNotFoundError:
            return
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.part(key), prefix)
        self._note(key, "prefix").unlink()

    def write_size(self, key: str, size: int | None) -> None:
        note = self._note(key, "size")
        note.write_text("" if size is None else str(size), encoding="ascii")

    def read_size(self, key: str) -> int | bool | None:
        """The expected size a download noted: an int, None (unknown), or False (no note
        yet: the download has not started)."""
        try:
            text = self._note(key, "size").read_text(encoding="ascii")
        except FileNotFoundError:
            return False
        return int(text) if text.isdigit() else None

    def discard_part(self, key: str) -> None:
        self.part(key).unlink(missing_ok=True)
        self._drop_notes(key)

    def _note(self, key: str, kind: str) -> Path:
        return self.tmp / f"{_checked(key)}.{kind}"

    def _drop_notes(self, key: str) -> None:
        for kind in ("size", "prefix"):
            self._note(key, kind).unlink(missing_ok=True)

    def commit(self, key: str, sha256: str) -> Path:
        """Move a verified, fsynced part file to its final name."""
        final = self.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        existed = final.exists()
        _replace(self.part(key), final)
        self._drop_notes(key)
        self._added(final, existed)
        return final

    def put(self, data: bytes, sha256: str) -> Path:
        """Store a small verified body (a `.metadata` file) in one go."""
        scratch = self.tmp / f"{uuid.uuid4().hex}.put"
        with open(scratch, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        final = self.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        existed = final.exists()
        _replace(scratch, final)
        self._added(final, existed)
        return final

    def adopt(self, scratch: Path, sha256: str) -> bool:
        """Give a verified file written in `tmp/` its final name; False (and the scratch
        file removed) when the store has that file already: it is never overwritten."""
        final = self.path(sha256)
        if final.exists():
            scratch.unlink(missing_ok=True)
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        _replace(scratch, final)
        self._added(final, False)
        return True

    def clean(self, locks: FileLocks) -> int:
        """Remove what interrupted downloads left behind, but for those another worker
        process is still busy with."""
        removed = 0
        for leftover in self.tmp.iterdir():
            key = leftover.name.partition(".")[0]  # <key>.part, .size, .prefix, .prefix.new
            if leftover.suffix == ".put":
                if time.time() - leftover.stat().st_mtime > 60:
                    leftover.unlink(missing_ok=True)
            elif _HEX64.fullmatch(key) and locks.acquire(key):
                leftover.unlink(missing_ok=True)
                locks.release(key)
                removed += leftover.suffix == ".part"
        return removed


def file_sha256(path: Path) -> str:
    """The sha256 of a file on disk, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_dir()]
    except FileNotFoundError:
        return []


def _checked(name: str) -> str:
    if not _HEX64.fullmatch(name):
        raise ValueError(f"not a sha256 digest: {name!r}")
    return name


def _replace(source: Path, target: Path) -> None:
    # On Windows a rename fails while another handle is open on the file; readers of a part
    # file hold one only for the length of a read, so a short retry is enough.
    for attempt in range(50):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == 49:
                raise
            time.sleep(0.02)
