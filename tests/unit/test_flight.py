"""Single flight: one task per key at a time, its result shared by every caller, and a caller
that goes away cancels nothing for the others."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from proxy.server.flight import SingleFlight

pytestmark = pytest.mark.anyio


class Work:
    """A piece of work that counts its runs and finishes when told."""

    def __init__(self, result: str = "done", error: Exception | None = None) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.result, self.error = result, error

    async def __call__(self) -> str:
        self.runs += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.result


async def test_concurrent_callers_share_one_run() -> None:
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    with anyio.fail_after(5):
        callers = [asyncio.ensure_future(flight.run("k", work)) for _ in range(10)]
        await asyncio.sleep(0)
        work.release.set()
        assert await asyncio.gather(*callers) == ["done"] * 10
    assert work.runs == 1


async def test_other_keys_run_on_their_own() -> None:
    flight: SingleFlight[str] = SingleFlight()
    a, b = Work("a"), Work("b")
    with anyio.fail_after(5):
        runs = asyncio.gather(flight.run("a", a), flight.run("b", b))
        await asyncio.sleep(0)
        a.release.set()
        b.release.set()
        assert list(await runs) == ["a", "b"]


async def test_a_caller_that_leaves_does_not_cancel_the_work_for_the_others() -> None:
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    with anyio.fail_after(5):
        leaving = asyncio.ensure_future(flight.run("k", work))
        staying = asyncio.ensure_future(flight.run("k", work))
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.sleep(0)
        work.release.set()
        assert await staying == "done"
        assert leaving.cancelled()
    assert work.runs == 1


async def test_a_failure_reaches_every_caller_and_the_key_runs_afresh_after() -> None:
    flight: SingleFlight[str] = SingleFlight()
    failing = Work(error=ValueError("upstream broke"))
    with anyio.fail_after(5):
        callers = [asyncio.ensure_future(flight.run("k", failing)) for _ in range(3)]
        await asyncio.sleep(0)
        failing.release.set()
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert [str(r) for r in results] == ["upstream broke"] * 3
        again = Work("second")
        again.release.set()
        assert await flight.run("k", again) == "second"
    assert failing.runs == 1 and again.runs == 1


async def test_start_runs_without_a_waiter_and_run_joins_it() -> None:
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    with anyio.fail_after(5):
        started = flight.start("k", work)
        joined = asyncio.ensure_future(flight.run("k", work))
        await asyncio.sleep(0)
        work.release.set()
        assert await joined == "done" and started.result() == "done"
    assert work.runs == 1


async def test_aclose_cancels_the_work_under_way() -> None:
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    with anyio.fail_after(5):
        task = flight.start("k", work)
        await asyncio.sleep(0)
        await flight.aclose()
    assert task.cancelled()
