"""Single flight: at most one task per key at a time, whose result every caller shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    """The work runs as a task of its own, so a caller that goes away (a client that hangs
    up) does not cancel it for the callers still waiting on it."""

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Future[V]] = {}

    async def run(self, key: Hashable, work: Callable[[], Awaitable[V]]) -> V:
        return await asyncio.shield(self.start(key, work))

    def start(self, key: Hashable, work: Callable[[], Awaitable[V]]) -> asyncio.Future[V]:
        """The task for `key`: the one running, or a new one; for callers that do not wait."""
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: Hashable, task: asyncio.Future[Any]) -> None:
        self._tasks.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved, so that a failure nobody waited for logs nothing

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
