"""The progress of many downloads at once, for a terminal or a log."""

from __future__ import annotations

import time
from typing import TextIO

from ..core.units import human_size
from .prefetch_plan import FileRef, Outcome, progress_line

REDRAW_INTERVAL = 0.1


class Progress:
    """One line on stderr, redrawn in place on a terminal; elsewhere (a log, CI) one line per
    finished file. Plain ASCII and `\\r` only: Windows consoles show no ANSI escapes by
    default."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.done = self.active = self.received = self.expected = 0
        self.began = time.monotonic()
        self._drawn = float("-inf")
        self._width = 0

    def begin(self, size: int | None) -> None:
        self.active += 1
        self.expected += size or 0

    def advance(self, count: int) -> None:
        self.received += count
        self._draw()

    def end(self, received: int, size: int | None, *, kept: bool) -> None:
        self.active -= 1
        if not kept:  # a failed attempt's bytes are not in the cache
            self.received -= received
            self.expected -= size or 0

    def finished(self, ref: FileRef, outcome: Outcome) -> None:
        self.done += 1
        if self.tty:
            self._draw(force=True)
            return
        if outcome.error is not None:
            status = "FAILED"
        else:
            status = "cached " if outcome.cached else "fetched"
        width = len(str(self.total))
        line = f"[{self.done:>{width}}/{self.total}] {status} {ref.filename}"
        line += f": {outcome.error}" if outcome.error else f" ({human_size(outcome.size)})"
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.tty or (not force and now - self._drawn < REDRAW_INTERVAL):
            return
        self._drawn = now
        waiting = self.total - self.done - self.active
        line = progress_line(
            self.done, self.total, self.received, self.expected, waiting, now - self.began
        )
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = max(self._width, len(line))
