"""How a big file is cut into byte ranges fetched at once, and how the work moves between them.

The file is a row of spans covering it end to end. Each is fetched by one connection at a
time; a connection that finishes its span takes one nobody is fetching, else cuts the span
with the most left in two and takes the far half, so a slow connection ends up with little
to do and the last bytes never wait on one straggler. Few, large ranges: CDNs answer many
small ones with 429, and each costs a round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# Ranges a file starts with are at least this long (lancache settled on 8 MiB slices: CDNs
# answer many small ones with 429)...
MIN_RANGE = 8 * 1024 * 1024
# ...and a span is cut later only while both halves keep at least this much.
MIN_SPLIT = 4 * 1024 * 1024
_ALIGN = 64 * 1024  # cuts fall on this, as reads from a disk like


@dataclass(eq=False)
class Span:
    """Bytes `start` to `end` (exclusive) of the file, of which `start` to `pos` are
    written. `end` moves closer when another connection takes the far half."""

    start: int
    end: int
    pos: int
    busy: bool = False

    @property
    def left(self) -> int:
        return self.end - self.pos

    @property
    def done(self) -> bool:
        return self.pos >= self.end


class Spans:
    def __init__(self, spans: list[Span], min_split: int = MIN_SPLIT) -> None:
        self._spans = sorted(spans, key=lambda s: s.start)
        self._min_split = min_split

    @classmethod
    def even(cls, size: int, count: int, min_split: int = MIN_SPLIT) -> Spans:
        """`size` bytes in `count` spans of about the same length, or fewer if they would
        be shorter than `MIN_RANGE`."""
        count = max(1, min(count, size // MIN_RANGE))
        step = _aligned(-(-size // count))
        starts = range(0, size, step)
        return cls([Span(s, min(s + step, size), s) for s in starts], min_split)

    def __iter__(self) -> Iterator[Span]:
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    @property
    def done(self) -> bool:
        return all(s.done for s in self._spans)

    def prefix(self) -> int:
        """How many bytes from the start are written without a gap."""
        for span in self._spans:
            if not span.done:
                return span.pos
        return self._spans[-1].end if self._spans else 0

    def claim(self) -> Span | None:
        """A span for a connection that is free: the first nobody fetches (the one nearest
        the start keeps the prefix growing), else the far half of the busy span with the
        most left; None when there is nothing worth taking."""
        for span in self._spans:
            if not span.busy and not span.done:
                span.busy = True
                return span
        busy = [s for s in self._spans if s.busy and not s.done]
        widest = max(busy, key=lambda s: s.left, default=None)
        if widest is None or widest.left < 2 * self._min_split:
            return None
        cut = _aligned(widest.pos + widest.left // 2)
        taken = Span(cut, widest.end, cut, busy=True)
        widest.end = cut
        self._spans.insert(self._spans.index(widest) + 1, taken)
        return taken


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN
