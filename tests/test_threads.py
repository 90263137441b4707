"""``core.threads.Workers``: the threads parses run on, whose results reach the loop in batches."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pixlift.core.threads import Workers


async def test_results_and_failures_reach_each_caller() -> None:
    workers = Workers(2, "test-workers")

    def square(n: int) -> int:
        if n == 7:
            raise ValueError("seven")
        return n * n

    results = await asyncio.gather(*(workers.run(lambda n=n: square(n)) for n in range(50)),  # type: ignore[misc]
                                   return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 7] == [n * n for n in range(50) if n != 7]
    assert isinstance(results[7], ValueError) and str(results[7]) == "seven"
    assert {t.name for t in threading.enumerate()} >= {"test-workers_0", "test-workers_1"}
    workers.close()


async def test_a_stopped_caller_has_what_its_call_returned_closed_and_calls_not_begun_never_run() -> None:
    """The parse of a file whose task was cancelled returns an opened file nobody will send: it is closed. The
    calls still queued behind it when their tasks are cancelled are not run at all."""
    workers = Workers(1, "test-workers")
    began, release = threading.Event(), threading.Event()
    ran: list[str] = []
    closed: list[str] = []

    def slow() -> str:
        began.set()
        release.wait(10)
        ran.append("slow")
        return "opened"

    first = asyncio.ensure_future(workers.run(slow, closed.append))
    queued = [asyncio.ensure_future(workers.run(lambda i=i: ran.append(f"q{i}") or "x")) for i in range(5)]
    await asyncio.get_running_loop().run_in_executor(None, began.wait, 10)
    first.cancel()
    for q in queued:
        q.cancel()
    await asyncio.sleep(0)
    release.set()
    after = await workers.run(lambda: "after")  # the one thread has gone through the queue by now
    assert after == "after"
    assert ran == ["slow"]
    assert closed == ["opened"]
    with pytest.raises(asyncio.CancelledError):
        await first
    workers.close()


async def test_close_cancels_the_calls_not_begun() -> None:
    workers = Workers(1, "test-workers")
    began, release = threading.Event(), threading.Event()

    def hold() -> str:
        began.set()
        release.wait(10)
        return "held"

    holding = asyncio.ensure_future(workers.run(hold))
    waiting = asyncio.ensure_future(workers.run(lambda: "never"))
    await asyncio.get_running_loop().run_in_executor(None, began.wait, 10)
    workers.close()
    release.set()
    assert await holding == "held"
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_result_that_cannot_be_handed_over_strands_no_other() -> None:
    """A call that raises StopIteration (which no asyncio Future takes) still answers its caller with an error,
    and the results that finished with it reach theirs."""
    workers = Workers(1, "test-workers")
    release = threading.Event()

    def stop() -> int:
        release.wait(10)
        raise StopIteration

    first = asyncio.ensure_future(workers.run(stop))
    rest = [asyncio.ensure_future(workers.run(lambda i=i: i)) for i in range(5)]  # type: ignore[misc]
    await asyncio.sleep(0.05)
    release.set()  # the five finish while the loop has not taken the first: one delivery holds them all
    done = await asyncio.wait_for(asyncio.gather(first, *rest, return_exceptions=True), 5)
    assert isinstance(done[0], RuntimeError) and "handed over" in str(done[0])
    assert done[1:] == [0, 1, 2, 3, 4]
    workers.close()
