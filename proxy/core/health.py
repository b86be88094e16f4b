"""Mirror health: a circuit breaker per mirror, so a broken mirror stops costing time.

Pure state: the clock and the random source are passed in, so every transition can be tested
without waiting.

- closed: the mirror is used.
- open: after `Circuit.failures` failures in a row, the mirror is skipped. A severe failure
  opens it at once: a timeout (a hanging mirror is the costliest kind of broken), bytes that
  do not match their hash, or an answer with Retry-After (the mirror asked for it).
- probing: once its probe is due, one request may try it; success closes the circuit, failure
  opens it again with a longer, jittered interval (doubling, up to `max_probe_interval`).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from .config import Circuit
from .redact import hide_passwords

JITTER = 0.25
# A Retry-After longer than this is not taken at its word.
MAX_RETRY_AFTER = 600.0
# Hedging (see `hedge_delay`): times to response headers kept per mirror, how many make a
# measurement, and the wait for a mirror not measured yet.
SAMPLES, MEASURED, COLD_HEDGE = 32, 5, 1.0
# A mirror not measured yet is tried before one that takes longer than this (see `by_speed`).
SLOW = 0.2
# Bodies at least this long measure a mirror's throughput (shorter ones, its latency).
THROUGHPUT_SAMPLE = 1024 * 1024


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"


@dataclass
class MirrorHealth:
    url: str
    policy: Circuit = field(default_factory=Circuit)
    state: State = State.CLOSED
    failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    latency: float | None = None  # seconds to response headers, smoothed
    throughput: float | None = None  # bytes a second of one file body, smoothed
    next_probe: float = 0.0
    interval: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES), repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def available(self, now: float) -> bool:
        """Whether a request may use this mirror now. A due probe is claimed by the caller:
        the next one waits for another interval, so a dead mirror gets one probe, not a
        stampede."""
        if self.state is State.CLOSED:
            return True
        if now < self.next_probe:
            return False
        self.next_probe = now + self.interval
        return True

    def succeeded(self, latency: float) -> None:
        self.state, self.failures, self.interval = State.CLOSED, 0, 0.0
        self.observe(latency)

    def observe(self, latency: float) -> None:
        """A time to response headers (or how long it had not answered, when dropped)."""
        self.latency = latency if self.latency is None else 0.7 * self.latency + 0.3 * latency
        self.recent.append(latency)

    def transferred(self, size: int, seconds: float) -> None:
        """A file body of `size` bytes came in `seconds` (from its headers to its end, or to
        where it stopped); only long ones tell the throughput."""
        if size < THROUGHPUT_SAMPLE or seconds <= 0:
            return
        rate = size / seconds
        self.throughput = rate if self.throughput is None else 0.7 * self.throughput + 0.3 * rate

    def hedge_delay(self, floor: float, ceiling: float) -> float:
        """How long to wait for this mirror's response headers before asking the next mirror
        as well: well past what it usually takes (1.5 times the 90th percentile of its recent
        answers), so a mirror that is slow but steady is left alone, and a hanging one costs
        about this; a second for one not measured yet; within `floor` and `ceiling`."""
        if len(self.recent) < MEASURED:
            wait = COLD_HEDGE
        else:
            ordered = sorted(self.recent)
            wait = 1.5 * ordered[int(0.9 * (len(ordered) - 1))]
        return min(max(wait, floor), ceiling)

    def failed(
        self, error: str, now: float, *, severe: bool = False, retry_after: float | None = None
    ) -> bool:
        """Record a failure; True when this one opened (or re-opened) the circuit."""
        self.failures += 1
        self.last_error, self.last_error_at = error, now
        gradual = self.state is State.CLOSED and not severe and retry_after is None
        if gradual and self.failures < self.policy.failures:
            return False
        if self.state is State.CLOSED:
            self.interval = self.policy.probe_interval
        else:
            self.interval = min(self.interval * 2, self.policy.max_probe_interval)
        self.state = State.OPEN
        wait = self.interval * self._rng.uniform(1 - JITTER, 1 + JITTER)
        if retry_after is not None:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
        self.next_probe = now + wait
        return True

    def report(self, now: float, hedge: tuple[float, float], rank: int = 1) -> MirrorReport:
        """`hedge`: the floor and ceiling of its hedge delay; `rank`: its place in the order
        the group's mirrors are tried in now."""
        return MirrorReport(
            url=hide_passwords(self.url),
            state=self.state,
            consecutive_failures=self.failures,
            last_error=self.last_error,
            last_error_age_s=None
            if self.last_error_at is None
            else round(now - self.last_error_at, 1),
            latency_ms=None if self.latency is None else round(self.latency * 1000, 1),
            throughput_mib_s=None if self.throughput is None else round(self.throughput / 2**20, 1),
            next_probe_in_s=round(max(self.next_probe - now, 0.0), 1)
            if self.state is State.OPEN
            else None,
            hedge_after_ms=round(self.hedge_delay(*hedge) * 1000),
            rank=rank,
        )


def by_speed(mirrors: list[MirrorHealth]) -> list[MirrorHealth]:
    """The mirrors in the order to try them: as given, except that a mirror clearly faster
    than one before it goes ahead of it: under half its smoothed time to response headers,
    or over twice its throughput, and not twice as bad on the other. One whose latency is
    not measured yet goes ahead of one slower than `SLOW` (to be measured too). The margins
    keep jitter from reordering them. A mirror whose circuit is open keeps its place: its
    probe is due when it is due."""
    slots = [i for i, m in enumerate(mirrors) if m.state is State.CLOSED]
    ranked: list[MirrorHealth] = []
    for mirror in (mirrors[i] for i in slots):
        place = len(ranked)
        while place and _clearly_faster(mirror, ranked[place - 1]):
            place -= 1
        ranked.insert(place, mirror)
    ordered = list(mirrors)
    for slot, mirror in zip(slots, ranked, strict=True):
        ordered[slot] = mirror
    return ordered


def _clearly_faster(mirror: MirrorHealth, ahead: MirrorHealth) -> bool:
    if ahead.latency is None:
        return False
    if mirror.latency is None:
        return ahead.latency > SLOW
    answers = _twice(ahead.latency, mirror.latency)  # +1: answers in under half the time
    sends = _twice(mirror.throughput, ahead.throughput)  # +1: sends over twice as fast
    return (answers > 0 and sends >= 0) or (sends > 0 and answers >= 0)


def _twice(more: float | None, less: float | None) -> int:
    """+1 if `more` is over twice `less`, -1 if under half of it, else (or unknown) 0."""
    if more is None or less is None:
        return 0
    return 1 if more > 2 * less else -1 if 2 * more < less else 0


@dataclass(frozen=True)
class MirrorReport:
    """A mirror's health as shown to people: on the status page and, as JSON, at `/-/health`.
    The URL is shown with its password masked."""

    url: str
    state: State
    consecutive_failures: int
    last_error: str | None
    last_error_age_s: float | None
    latency_ms: float | None
    next_probe_in_s: float | None  # while the circuit is open
    throughput_mib_s: float | None = None  # of one file body, from long ones
    hedge_after_ms: int | None = None  # the next mirror is asked too past this
    rank: int = 1  # its place in the order its group's mirrors are tried in now

    @property
    def up(self) -> bool:
        return self.state is State.CLOSED

    def as_json(self) -> dict[str, object]:
        return {**self.__dict__, "state": self.state.value}
