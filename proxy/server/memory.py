"""Keeping the process small while it moves gigabytes in 1 MiB chunks."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_M_MMAP_THRESHOLD = -3


def return_large_buffers_to_the_os() -> None:
    """glibc serves a freed 1 MiB buffer's successors from its heap once its dynamic mmap
    threshold has risen, and heaps fragment and stay resident: serving 16 clients grew the
    process by about 60 MiB. A fixed threshold keeps such buffers in mmap, returned on free
    (about 30 MiB then, the chunks really in flight). Elsewhere this does nothing."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


class ChunkBudget:
    """Chunk sizes for the file responses being sent at once. Each gets `largest` while they
    all fit in `budget`; when many clients download at the same time, smaller ones (not below
    `smallest`), so that the bytes in flight stay about flat however many clients there are.
    (Each response holds about two chunks: the one being read and the one the socket has not
    taken yet.)"""

    def __init__(
        self, budget: int = 8 * 2**20, largest: int = 2**20, smallest: int = 128 * 2**10
    ) -> None:
        self.budget, self.largest, self.smallest = budget, largest, smallest
        self.active = 0

    @contextmanager
    def chunk(self) -> Iterator[int]:
        self.active += 1
        try:
            yield max(self.smallest, min(self.largest, self.budget // self.active))
        finally:
            self.active -= 1


CHUNKS = ChunkBudget()
