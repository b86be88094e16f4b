"""Asking a file's sources in a race, as pages are asked of mirrors (see `hedging`): a source
that has not answered within its mirror's hedge delay has the next source asked as well
(found first, which may mean reading that mirror's page), and the first answer wins; the
others are cancelled, or closed if they answered too late. A source that fails has the next
one asked at once. Only a loser that had itself run past its delay counts against its
mirror. Downloads race for their first response only: a body once chosen is never hedged (a
stalled one resumes, see `CacheFiller`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..core.health import MirrorHealth
from .errors import NotFoundUpstream, UpstreamError
from .metrics import Metrics
from .mirrors import Mirrors

T = TypeVar("T")
Source = tuple[MirrorHealth, str]  # a mirror, and the file's URL there


class Lookups:
    """A file's sources, looked up one at a time (each after the first may mean reading a
    mirror's page), a lookup under way kept for whoever asks next rather than dropped."""

    def __init__(self, sources: AsyncGenerator[Source, None]) -> None:
        self._sources = sources
        self._pending: asyncio.Future[Source | None] | None = None

    async def __aenter__(self) -> Lookups:
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._pending is not None:
            self._pending.cancel()
            await asyncio.gather(self._pending, return_exceptions=True)
        await self._sources.aclose()

    def lookup(self) -> asyncio.Future[Source | None]:
        """The next source, being looked up (None: there is no other)."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._sources, None))
        return self._pending

    def take(self) -> Source | None:
        """The source the finished lookup found."""
        assert self._pending is not None and self._pending.done()
        found, self._pending = self._pending, None
        return found.result()

    async def next(self) -> Source | None:
        await asyncio.shield(self.lookup())
        return self.take()


@dataclass(eq=False)
class _Attempt(Generic[T]):
    source: Source
    started: float
    task: asyncio.Future[T]


class SourceRace(Generic[T]):
    """One question (`ask` puts it to a source) to the sources `Lookups` finds."""

    def __init__(
        self,
        sources: Lookups,
        ask: Callable[[Source], Awaitable[T]],
        mirrors: Mirrors,
        metrics: Metrics,
        discard: Callable[[T], Awaitable[None]] | None = None,
    ) -> None:
        self._sources, self._ask, self._discard = sources, ask, discard
        self._mirrors, self._metrics = mirrors, metrics
        self._attempts: list[_Attempt[T]] = []
        self._finding: asyncio.Future[Source | None] | None = None
        self._exhausted = False

    async def first(self, error: Exception) -> T:
        """The first answer; `error`, or the last source's, if no source answers."""
        self._find_next()
        try:
            while self._attempts or self._finding:
                if self._finding in await self._wait():
                    self._start()
                for attempt in [a for a in self._attempts if a.task.done()]:
                    self._attempts.remove(attempt)
                    try:
                        answer = attempt.task.result()
                    except (UpstreamError, NotFoundUpstream) as exc:
                        error = exc
                        continue
                    self._count_the_slow(f"{attempt.source[1]} answered first")
                    return answer
                if not self._attempts and self._finding is None and not self._exhausted:
                    self._find_next()  # every one asked failed: the next, right away
            raise error
        finally:
            await self._close()

    async def _wait(self) -> set[asyncio.Future[Any]]:
        """What ended; nothing once the newest attempt ran past its hedge delay (the next
        source is then looked for as well)."""
        timeout = None
        if self._attempts and self._finding is None and not self._exhausted:
            newest = self._attempts[-1]
            waited = self._mirrors.clock() - newest.started
            timeout = max(self._mirrors.hedge_delay(newest.source[0]) - waited, 0.0)
        watched: list[asyncio.Future[Any]] = [a.task for a in self._attempts]
        if self._finding is not None:
            watched.append(self._finding)
        done, _ = await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            self._metrics.hedged(self._attempts[-1].source[0].url)
            self._find_next()
        return done

    def _find_next(self) -> None:
        self._finding = self._sources.lookup()

    def _start(self) -> None:
        source, self._finding = self._sources.take(), None
        if source is None:
            self._exhausted = True
            return
        task = asyncio.ensure_future(self._ask(source))
        self._attempts.append(_Attempt(source, self._mirrors.clock(), task))

    def _count_the_slow(self, reason: str) -> None:
        now = self._mirrors.clock()
        for attempt in self._attempts:
            mirror, elapsed = attempt.source[0], now - attempt.started
            if not attempt.task.done() and elapsed >= self._mirrors.hedge_delay(mirror):
                self._mirrors.slow(mirror, elapsed, reason)

    async def _close(self) -> None:
        """Cancel what is still under way, discard what answered too late to be used. A
        lookup under way goes on, for the next source a download may need."""
        pending = [a.task for a in self._attempts]
        for task in pending:
            task.cancel()
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if self._discard is not None and not isinstance(result, BaseException):
                with contextlib.suppress(Exception):
                    await self._discard(result)
