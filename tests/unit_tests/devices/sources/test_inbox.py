"""The inbox delivers every event posted from other threads, in order, with one loop wake-up
per burst rather than per event."""

from __future__ import annotations

import asyncio
import threading

from devices.sources.inbox import Inbox, inbox_for


async def test_every_event_of_several_threads_arrives_in_each_threads_order():
    loop = asyncio.get_running_loop()
    inbox = Inbox(loop)
    got: list[tuple[int, int]] = []
    done = asyncio.Event()
    threads, per_thread = 4, 5000

    def record(item: tuple[int, int]) -> None:
        got.append(item)
        if len(got) == threads * per_thread:
            done.set()

    def produce(t: int) -> None:
        for i in range(per_thread):
            inbox.post(record, (t, i))

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    await asyncio.wait_for(done.wait(), 10)
    for t in range(threads):
        assert [i for (tt, i) in got if tt == t] == list(range(per_thread))
    assert inbox.events == threads * per_thread


async def test_a_burst_wakes_the_loop_once():
    loop = asyncio.get_running_loop()
    inbox = Inbox(loop)
    got: list[int] = []
    burst = threading.Thread(target=lambda: [inbox.post(got.append, i) for i in range(1000)])
    burst.start()
    burst.join()
    await asyncio.sleep(0.05)
    assert got == list(range(1000))
    assert inbox.wakeups == 1
    inbox.post(got.append, 1000)  # posted after the drain: wakes the loop again
    await asyncio.sleep(0.05)
    assert got[-1] == 1000 and inbox.wakeups == 2


async def test_a_failing_handler_does_not_drop_the_events_after_it():
    inbox = Inbox(asyncio.get_running_loop())
    got: list[int] = []

    def explode(_: object) -> None:
        raise ValueError("bad event")

    threading.Thread(target=lambda: [inbox.post(explode, 0), inbox.post(got.append, 1)]).start()
    await asyncio.sleep(0.05)
    assert got == [1]


async def test_one_inbox_per_loop():
    loop = asyncio.get_running_loop()
    assert inbox_for(loop) is inbox_for(loop)
