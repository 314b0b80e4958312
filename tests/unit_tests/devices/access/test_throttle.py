"""Write coalescing (latest wins per user and target) and the per-user rate cap."""

import asyncio

from devices.access.throttle import Coalescer, RateLimiter


async def test_while_one_set_runs_only_the_newest_waiting_one_follows():
    coalescer = Coalescer()
    release = asyncio.Event()
    ran: list[int] = []

    def job(n):
        async def run():
            ran.append(n)
            if n == 0:
                await release.wait()
            return {"status": "done", "n": n}
        return run

    first = asyncio.create_task(coalescer.submit(("u", "PV"), job(0)))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(coalescer.submit(("u", "PV"), job(n))) for n in range(1, 30)]
    other = asyncio.create_task(coalescer.submit(("v", "PV"), job(99)))  # another user is not held back
    await asyncio.sleep(0.01)
    assert ran == [0, 99]
    release.set()
    results = await asyncio.gather(first, *waiting, other)
    assert ran == [0, 99, 29]
    assert [r["status"] for r in results[1:-2]] == ["superseded"] * 28
    assert results[-2]["n"] == 29 and not coalescer._slots


def test_rate_limiter_allows_bursts_then_the_rate():
    limiter = RateLimiter(rate=10.0, burst=3.0)
    assert [limiter.allow("u") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("other")


async def test_the_newest_set_is_decided_by_arrival_and_a_refused_one_supersedes_nothing():
    coalescer = Coalescer()
    release = asyncio.Event()
    ran: list[str] = []

    def job(name):
        async def run():
            ran.append(name)
            if name == "a":
                await release.wait()
            return {"status": "done"}
        return run

    running = asyncio.create_task(coalescer.submit(("u", "PV"), job("a")))
    await asyncio.sleep(0)
    older, newer = coalescer.place(("u", "PV")), coalescer.place(("u", "PV"))  # b then c arrive
    late_newer = asyncio.create_task(asyncio.sleep(0.01, result=None))  # c's checks take longer ...
    waiting_b = asyncio.create_task(older.run(job("b")))  # ... so b reaches the line first
    await late_newer
    waiting_c = asyncio.create_task(newer.run(job("c")))
    release.set()
    await asyncio.gather(running, waiting_b, waiting_c)
    assert ran == ["a", "c"]  # c arrived last: it wins, though its checks finished last

    release.clear()
    running = asyncio.create_task(coalescer.submit(("u", "PV"), job("a")))
    await asyncio.sleep(0)
    waiting = coalescer.place(("u", "PV"))
    refused = coalescer.place(("u", "PV"))
    refused.leave()  # the newest was refused (rate limit, rule): the waiting one still goes
    pending = asyncio.create_task(waiting.run(job("b")))
    release.set()
    await asyncio.gather(running, pending)
    assert ran[-2:] == ["a", "b"] and not coalescer._slots
