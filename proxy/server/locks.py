"""Which process downloads which file, when several worker processes share one cache.

One exclusive record lock per file, at an offset derived from the file's key, in one shared
lock file. The kernel drops a process's record locks when it dies, so a crashed owner never
leaves a file stuck, and no lock file is ever created or removed per download.

Where `fcntl` does not exist (Windows) there is one process only, and every lock is granted.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

CROSS_PROCESS = fcntl is not None


class FileLocks:
    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644) if CROSS_PROCESS else None

    def acquire(self, key: str) -> bool:
        """Take the lock for `key` if no other process holds it; never waits."""
        if self._fd is None:
            return True
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _offset(key))
        except OSError:
            return False
        return True

    def release(self, key: str) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, _offset(key))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _offset(key: str) -> int:
    # 40 bits of a hex digest: distinct files share a lock with odds of about one in 10^12.
    return int(key[:10], 16)
