"""Many blocking calls in one executor job: order, results, errors, calls queued meanwhile."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from devices.sources.batch_calls import CallBatcher


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=True)


async def test_calls_run_in_order_on_few_jobs_and_return_their_results(executor):
    batcher = CallBatcher(asyncio.get_running_loop(), executor)
    seen: list[int] = []
    threads: set[int] = set()

    def work(i: int) -> int:
        seen.append(i)
        threads.add(threading.get_ident())
        return i * i

    results = await asyncio.gather(*(batcher.call(work, i) for i in range(500)))
    assert results == [i * i for i in range(500)]
    assert seen == list(range(500))  # in the order asked
    assert batcher.jobs < 10  # a job takes everything queued meanwhile: not a job per call
    assert threading.get_ident() not in threads  # never on the loop


async def test_an_exception_reaches_its_caller_and_the_rest_still_run(executor):
    batcher = CallBatcher(asyncio.get_running_loop(), executor)

    def fail() -> None:
        raise ValueError("bad channel")

    first, bad, last = batcher.call(lambda: 1), batcher.call(fail), batcher.call(lambda: 3)
    assert await first == 1
    with pytest.raises(ValueError, match="bad channel"):
        await bad
    assert await last == 3


async def test_a_call_queued_while_a_job_runs_is_not_left_behind(executor):
    batcher = CallBatcher(asyncio.get_running_loop(), executor)
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "slow"

    running = batcher.call(slow)
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    later = batcher.call(lambda: "later")  # the job is busy: queued for it or the next one
    release.set()
    assert await asyncio.wait_for(running, 5) == "slow"
    assert await asyncio.wait_for(later, 5) == "later"


async def test_calls_fail_instead_of_hanging_once_the_executor_is_shut_down(executor):
    batcher = CallBatcher(asyncio.get_running_loop(), executor)
    assert await batcher.call(lambda: "before") == "before"
    executor.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="shut down"):
        await asyncio.wait_for(batcher.call(lambda: "after"), 2)
    with pytest.raises(RuntimeError, match="shut down"):  # and the next caller too
        await asyncio.wait_for(batcher.call(lambda: "later"), 2)
