"""What the page cache keeps of a page (or an index root): an entry, with the bodies rendered
from it and what they weigh in memory, and how an entry is handed out (`Found`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio

from ..core.config import Upstream
from ..core.model import CacheResult, FileOrigin, ProjectPage
from ..core.policy import PolicyKey
from ..core.render import Rendered

T = TypeVar("T")
R = TypeVar("R")
# What an entry's value takes in memory, roughly: per file of a page, per name of a root.
_FILE_BYTES, _NAME_BYTES = 600, 80


@dataclass
class Entry(Generic[T]):
    value: T
    fetched: float  # wall-clock time: entries outlive the process
    key: str = ""  # under which the page cache keeps it
    # Per key (a format, and the policy it is screened with): the version of what else went
    # into it (the lessons, the policy's state), and the render.
    renders: dict[Hashable, tuple[Hashable, Any]] = field(default_factory=dict)
    rendered_bytes: int = 0

    @property
    def weight(self) -> int:
        """Bytes it holds, roughly: its value and its renders."""
        value = self.value
        if isinstance(value, ProjectPage):
            held = _FILE_BYTES * len(value.files)
        else:
            held = _NAME_BYTES * len(value) if isinstance(value, set) else 0
        return held + self.rendered_bytes

    async def rendered(
        self, key: Hashable, render: Callable[[T], R], version: Hashable = None
    ) -> R:
        """What `render` makes of the value, once per `key`, and again when the `version` of
        what else goes into it moves. Off the event loop: the index root of the official
        index (700,000 names) takes a second to render."""
        kept = self.renders.get(key)
        if kept is None or kept[0] != version:
            result = await anyio.to_thread.run_sync(render, self.value)
            self.renders[key] = kept = (version, result)
            self.rendered_bytes = sum(_bytes(r) for _, r in self.renders.values())
        found: R = kept[1]
        return found


def _bytes(render: Any) -> int:
    body = render.body if isinstance(render, Shown) else render
    return len(body.body) if isinstance(body, Rendered) else 0


@dataclass(frozen=True)
class Shown:
    """A project page's body as served, and what the policy left out of it."""

    body: Rendered
    hidden: Counter[PolicyKey] = field(default_factory=Counter)
    audited: tuple[str, ...] = ()


@dataclass(frozen=True)
class Found(Generic[T]):
    """A cached value, and how it was served."""

    entry: Entry[T]
    cache: CacheResult

    @property
    def value(self) -> T:
        return self.entry.value


@dataclass(frozen=True)
class ProjectFound(Found[ProjectPage]):
    """A project's page as served (merged, with the `union` strategy), and the upstream pages
    it was made of, in priority order: where each of its files is to be fetched."""

    origins: tuple[tuple[Upstream, ProjectPage], ...] = ()

    def origin(self, filename: str) -> FileOrigin | None:
        """Where the file of this name comes from; None if no page lists it."""
        for upstream, page in self.origins:
            link = page.file(filename)
            if link is not None:
                return FileOrigin(upstream, page, link)
        return None

    def group_of(self, filename: str) -> Upstream:
        """The upstream group the file of this name comes from."""
        origin = self.origin(filename)
        return self.origins[0][0] if origin is None else origin.upstream
