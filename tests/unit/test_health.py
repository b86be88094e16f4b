"""The circuit breaker of a mirror, step by step on a fake clock."""

from __future__ import annotations

import random

from proxy.core.config import Circuit
from proxy.core.health import MirrorHealth, State, by_speed

POLICY = Circuit(failures=3, probe_interval=5, max_probe_interval=40)
HEDGE = (0.25, 2.0)  # floor and ceiling of the hedge delay


def _mirror() -> MirrorHealth:
    return MirrorHealth("https://m.test/simple/", POLICY, _rng=random.Random(1))


def test_opens_after_consecutive_failures_and_one_success_closes_it() -> None:
    m = _mirror()
    assert [m.failed("503", now=0) for _ in range(3)] == [False, False, True]
    assert m.state is State.OPEN and not m.available(1)
    assert 5 * 0.75 <= m.next_probe <= 5 * 1.25
    # The probe is due: one caller gets it, the next one waits another interval.
    assert m.available(m.next_probe)
    assert not m.available(m.next_probe - 0.01)
    m.succeeded(latency=0.2)
    assert m.report(0, HEDGE).up and m.failures == 0 and m.available(0)
    assert m.report(0, HEDGE).latency_ms == 200.0


def test_a_success_between_failures_resets_the_count() -> None:
    m = _mirror()
    m.failed("503", now=0)
    m.failed("503", now=0)
    m.succeeded(latency=0.1)
    assert not m.failed("503", now=0)
    assert m.state is State.CLOSED


def test_a_severe_failure_or_retry_after_opens_at_once() -> None:
    m = _mirror()
    assert m.failed("no response", now=0, severe=True)
    assert m.state is State.OPEN
    other = _mirror()
    assert other.failed("HTTP 429", now=0, retry_after=30)
    assert other.next_probe == 30  # Retry-After beats the shorter probe interval


def test_probe_intervals_grow_with_jitter_up_to_the_cap() -> None:
    m = _mirror()
    m.failed("down", now=0, severe=True)
    intervals = []
    now = 0.0
    for _ in range(6):
        now = m.next_probe
        assert m.available(now)
        m.failed("still down", now=now)
        intervals.append(m.interval)
    assert intervals == [10, 20, 40, 40, 40, 40]
    assert (
        POLICY.max_probe_interval * 0.75 <= m.next_probe - now <= POLICY.max_probe_interval * 1.25
    )


def test_report() -> None:
    m = _mirror()
    m.failed("HTTP 503", now=10, severe=True)
    report = m.report(12, HEDGE)
    assert not report.up and report.state is State.OPEN
    assert report.last_error == "HTTP 503"
    assert report.last_error_age_s == 2.0
    assert report.consecutive_failures == 1
    assert report.next_probe_in_s is not None
    # As `/-/health` shows it.
    assert report.as_json() == {
        "url": report.url,
        "state": "open",
        "consecutive_failures": 1,
        "last_error": "HTTP 503",
        "last_error_age_s": 2.0,
        "latency_ms": None,
        "next_probe_in_s": report.next_probe_in_s,
        "hedge_after_ms": 1000,
        "rank": 1,
        "throughput_mib_s": None,
    }


def test_the_hedge_delay_follows_what_the_mirror_usually_takes() -> None:
    m = MirrorHealth("https://m.test/")
    assert m.hedge_delay(*HEDGE) == 1.0  # not measured yet: a second
    for _ in range(20):
        m.succeeded(0.1)
    assert m.hedge_delay(*HEDGE) == 0.25  # fast: the floor
    for _ in range(32):
        m.succeeded(0.9)  # slow but steady: waited for well past its usual
    assert abs(m.hedge_delay(*HEDGE) - 1.35) < 1e-9
    for _ in range(32):
        m.succeeded(5.0)
    assert m.hedge_delay(*HEDGE) == 2.0  # at most the ceiling
    assert m.report(0, HEDGE).hedge_after_ms == 2000


def test_only_a_clearly_faster_mirror_goes_ahead_and_an_open_one_keeps_its_place() -> None:
    def mirror(name: str, latency: float | None = None, *, open_: bool = False) -> MirrorHealth:
        m = MirrorHealth(f"https://{name}.test/")
        if latency is not None:
            m.succeeded(latency)
        if open_:
            m.failed("down", 0.0, severe=True)
        return m

    def order(*mirrors: MirrorHealth) -> list[str]:
        return [m.url[8] for m in by_speed(list(mirrors))]

    assert order(mirror("a"), mirror("b")) == ["a", "b"]  # a cold start: as configured
    assert order(mirror("a", 0.3), mirror("b", 0.2)) == ["a", "b"]  # alike: as configured
    assert order(mirror("a", 0.3), mirror("b", 0.1)) == ["b", "a"]  # under half: ahead
    assert order(mirror("a", 0.3), mirror("b")) == ["b", "a"]  # a is slow: b gets measured
    assert order(mirror("a", 0.05), mirror("b")) == ["a", "b"]  # a is fast: no need
    assert order(mirror("a", 0.3, open_=True), mirror("b", 0.4), mirror("c", 0.1)) == [
        "a", "c", "b"
    ]  # fmt: skip


def test_a_mirror_that_sends_over_twice_as_fast_goes_ahead_unless_it_answers_twice_as_slow() -> (
    None
):
    def mirror(name: str, latency: float, mib_s: float | None = None) -> MirrorHealth:
        m = MirrorHealth(f"https://{name}.test/")
        m.succeeded(latency)
        if mib_s is not None:
            m.transferred(int(mib_s * 2**20), 1.0)
        return m

    def order(*mirrors: MirrorHealth) -> list[str]:
        return [m.url[8] for m in by_speed(list(mirrors))]

    assert order(mirror("a", 0.1, 5), mirror("b", 0.1, 20)) == ["b", "a"]
    assert order(mirror("a", 0.1, 5), mirror("b", 0.1, 8)) == ["a", "b"]  # alike
    assert order(mirror("a", 0.1, 5), mirror("b", 0.3, 20)) == ["a", "b"]  # answers too slowly
    assert order(mirror("a", 0.1, 5), mirror("b", 0.1)) == ["a", "b"]  # b's not measured
    # Under half the latency goes ahead, unless it sends under half as fast.
    assert order(mirror("a", 0.3, 20), mirror("b", 0.1, 5)) == ["a", "b"]
    assert order(mirror("a", 0.3, 20), mirror("b", 0.1, 15)) == ["b", "a"]


def test_only_long_bodies_measure_throughput() -> None:
    m = MirrorHealth("https://m.test/")
    m.transferred(100_000, 0.5)  # a small file: latency, not throughput
    assert m.throughput is None
    m.transferred(10 * 2**20, 1.0)
    m.transferred(20 * 2**20, 1.0)
    assert m.throughput == 0.7 * 10 * 2**20 + 0.3 * 20 * 2**20
    assert m.report(0, HEDGE).throughput_mib_s == 13.0
