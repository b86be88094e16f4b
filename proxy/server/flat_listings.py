"""Flat mirrors' listings: one page of links to every file, which every project asks for.

Each listing is fetched once per TTL (by one task, however many projects ask at once) and
kept parsed in memory, as project pages by name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from ..core.health import MirrorHealth
from ..core.model import NormalizedName, ProjectPage
from .flight import SingleFlight

Listing = dict[NormalizedName, ProjectPage]


class FlatListings:
    def __init__(
        self,
        ttl: float,
        clock: Callable[[], float],
        fetch: Callable[[MirrorHealth], Awaitable[Listing]],
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._fetch = fetch
        self._kept: dict[str, tuple[float, Listing]] = {}  # mirror URL -> (fetched at, listing)
        self._flights: SingleFlight[Listing] = SingleFlight()

    async def get(self, mirror: MirrorHealth) -> Listing:
        kept = self._kept.get(mirror.url)
        if kept is not None and self._clock() - kept[0] < self._ttl:
            return kept[1]
        return await self._flights.run(mirror.url, partial(self._refresh, mirror))

    async def _refresh(self, mirror: MirrorHealth) -> Listing:
        listing = await self._fetch(mirror)
        self._kept[mirror.url] = (self._clock(), listing)
        return listing

    async def aclose(self) -> None:
        await self._flights.aclose()
