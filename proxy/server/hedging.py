"""Asking a group's mirrors in turn, the next one as well when one is slow to answer.

A mirror is given its hedge delay (see `MirrorHealth.hedge_delay`) to send its response
headers; past it, while it still has not, the next mirror is asked too, and so on. The first
answer wins. A request whose headers are in is never hedged: its body is coming (a slow body
is the stall timeout's and the page deadline's business). Only a loser that had itself run
past its hedge delay counts against its mirror; one asked later, as a hedge, is just dropped.
A mirror's due probe is claimed only when the mirror is really asked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..core.health import MirrorHealth
from .errors import UpstreamError
from .metrics import Metrics
from .mirrors import MirrorFailed, Mirrors

T = TypeVar("T")
_HEADERS_IN: ContextVar[asyncio.Event | None] = ContextVar("headers_in", default=None)


def headers_arrived() -> None:
    """Said by the request to a mirror once its response headers are in."""
    event = _HEADERS_IN.get()
    if event is not None:
        event.set()


@dataclass
class _Attempt(Generic[T]):
    mirror: MirrorHealth
    started: float
    headers: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Future[T | None] | None = None


class Hedged(Generic[T]):
    """One question to a group's mirrors (`ask` puts it to one), in the order given."""

    def __init__(
        self,
        mirrors: list[MirrorHealth],
        ask: Callable[[MirrorHealth], Awaitable[T | None]],
        health: Mirrors,
        metrics: Metrics,
    ) -> None:
        self._waiting = list(mirrors)  # not asked yet
        self._ask, self._health, self._metrics = ask, health, metrics
        self._running: list[_Attempt[T]] = []
        self.problems: list[str] = []

    async def answer(self, what: str) -> T | None:
        """The first mirror's answer; None when every mirror asked said there is no such
        thing (or failed: see `problems`)."""
        try:
            while self._running or self._start_next():
                found = await self._next_answer()
                if found is not None:
                    self._drop_the_others(f"{what}: another mirror answered first")
                    return found
            return None
        finally:
            await self._close()

    def _start_next(self) -> bool:
        """Ask the next mirror that may be asked now (claiming its probe if its circuit is
        open); False if there is none left. Skipped ones are noted as problems."""
        while self._waiting:
            mirror = self._waiting.pop(0)
            if self._health.usable(mirror):
                attempt = _Attempt[T](mirror, self._health.clock())
                attempt.task = asyncio.ensure_future(self._asked(attempt))
                self._running.append(attempt)
                return True
            self.problems.append(f"{mirror.url}: skipped (circuit open)")
        return False

    async def _asked(self, attempt: _Attempt[T]) -> T | None:
        _HEADERS_IN.set(attempt.headers)  # in this task's own context
        return await self._ask(attempt.mirror)

    async def _next_answer(self) -> T | None:
        """Wait for the running attempts: a thing found, or None once one ended without (a
        "no such thing" or a failure) or the newest was slow and the next mirror was asked."""
        newest = self._running[-1]
        patience = None
        if not newest.headers.is_set() and any(self._health.could_use(m) for m in self._waiting):
            waited = self._health.clock() - newest.started
            patience = max(self._health.hedge_delay(newest.mirror) - waited, 0.0)
        watched: list[asyncio.Future[Any]] = [a.task for a in self._running if a.task]
        # The newest one's headers, until they are in: once they are, waiting on the event
        # would return at once, over and over, while its body arrives.
        headers = None if newest.headers.is_set() else asyncio.ensure_future(newest.headers.wait())
        try:
            done, _ = await asyncio.wait(
                [*watched, *([headers] if headers else [])],
                timeout=patience,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if headers is not None:
                headers.cancel()
        if not done:  # slow: the next mirror as well
            self._metrics.hedged(newest.mirror.url)
            self._start_next()
            return None
        return self._collect()

    def _collect(self) -> T | None:
        """Take every attempt that ended: the earliest asked that found the thing wins."""
        found: T | None = None
        for attempt in [a for a in self._running if a.task is not None and a.task.done()]:
            self._running.remove(attempt)
            assert attempt.task is not None
            try:
                result = attempt.task.result()
            except (MirrorFailed, UpstreamError) as exc:  # UpstreamError: refused, pool busy
                self.problems.append(f"{attempt.mirror.url}: {exc}")
                continue
            if found is None:
                found = result
        return found

    def _drop_the_others(self, reason: str) -> None:
        now = self._health.clock()
        for attempt in self._running:
            elapsed = now - attempt.started
            if not attempt.headers.is_set() and elapsed >= self._health.hedge_delay(attempt.mirror):
                self._health.slow(attempt.mirror, elapsed, reason)
            if attempt.task is not None:
                attempt.task.cancel()

    async def _close(self) -> None:
        tasks = [a.task for a in self._running if a.task is not None]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
