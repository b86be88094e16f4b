"""The mirrors of every upstream group, and what each answer does to their health: a failure
is logged, counted and moves the mirror's circuit breaker (see `core.health`); a success
closes it again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..core.config import Config, Upstream
from ..core.health import MirrorHealth, MirrorReport, State, by_speed
from .metrics import Metrics

log = logging.getLogger("pypi_proxy.upstream")


class MirrorFailed(Exception):
    """One mirror failed one request (already recorded in its health)."""


class Mirrors:
    def __init__(
        self, config: Config, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._metrics = metrics
        self.clock = clock
        self._hedge = (config.hedge_min, config.hedge_max)
        self._order = config.mirror_order
        self._groups = {
            u.name: [MirrorHealth(url, config.circuit) for url in u.mirrors]
            for u in (*config.upstreams, *config.conda_upstreams)
        }
        # The object store's health, as a file source and for uploads (None without one).
        self.bucket = MirrorHealth(config.store.location, config.circuit) if config.store else None

    def of(self, upstream: Upstream) -> list[MirrorHealth]:
        """The group's mirrors, as configured."""
        return self._groups[upstream.name]

    def preferred(self, upstream: Upstream) -> list[MirrorHealth]:
        """The group's mirrors in the order they are tried: the clearly faster first (see
        `core.health.by_speed`), as configured with `mirrors.order: configured`."""
        return self._ordered(self._groups[upstream.name])

    def _ordered(self, group: list[MirrorHealth]) -> list[MirrorHealth]:
        return group if self._order == "configured" else by_speed(group)

    def could_use(self, mirror: MirrorHealth) -> bool:
        """Whether a request could go to the mirror now, claiming nothing."""
        return mirror.state is State.CLOSED or self.clock() >= mirror.next_probe

    def slow(self, mirror: MirrorHealth, elapsed: float, reason: str) -> None:
        """It had not answered after `elapsed` seconds, and another mirror had: a failure,
        and a sign of how slow it is now."""
        mirror.observe(elapsed)
        self.failed(mirror, reason)

    def usable(self, mirror: MirrorHealth) -> bool:
        """Whether a request may go to the mirror now (see `MirrorHealth.available`)."""
        return mirror.available(self.clock())

    def succeeded(self, mirror: MirrorHealth, latency: float) -> None:
        if mirror.state is State.OPEN:
            log.info("mirror %s answers again: circuit closed", mirror.url)
        mirror.succeeded(latency)
        self._metrics.upstream_latency(mirror.url, latency)

    def transferred(self, mirror: MirrorHealth, size: int, seconds: float) -> None:
        mirror.transferred(size, seconds)
        if mirror.throughput is not None:
            self._metrics.upstream_throughput(mirror.url, mirror.throughput)

    def failed(
        self,
        mirror: MirrorHealth,
        reason: str,
        *,
        severe: bool = False,
        retry_after: float | None = None,
    ) -> MirrorFailed:
        """Record the failure; the exception to raise for it."""
        log.warning("mirror %s: %s", mirror.url, reason)
        self._metrics.upstream_error(mirror.url)
        now = self.clock()
        if mirror.failed(reason, now, severe=severe, retry_after=retry_after):
            log.warning(
                "mirror %s: circuit open after %d failure(s); next probe in %.1f s",
                mirror.url,
                mirror.failures,
                mirror.next_probe - now,
            )
        return MirrorFailed(reason)

    def next_probe(self, upstream: Upstream) -> float | None:
        """Seconds until the first of the group's skipped mirrors may be tried again."""
        now = self.clock()
        waits = [m.next_probe - now for m in self.of(upstream) if m.state is State.OPEN]
        return max(min(waits), 0.0) if waits else None

    def hedge_delay(self, mirror: MirrorHealth) -> float:
        """How long its answer is waited for before the next mirror is asked as well."""
        return mirror.hedge_delay(*self._hedge)

    def bucket_report(self) -> MirrorReport | None:
        return self.bucket.report(self.clock(), self._hedge) if self.bucket else None

    def reports(self) -> dict[str, list[MirrorReport]]:
        """Each group's mirrors, as configured, with their place in the order tried now."""
        now, reports = self.clock(), {}
        for name, group in self._groups.items():
            ranks = {id(m): n for n, m in enumerate(self._ordered(group), start=1)}
            reports[name] = [m.report(now, self._hedge, ranks[id(m)]) for m in group]
        return reports
