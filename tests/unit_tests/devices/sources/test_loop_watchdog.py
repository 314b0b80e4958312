"""The loop watchdog reports a loop blocked by one call, with the blocking call's stack, once
per stall, and the stall's length when the loop turns again; a loop that keeps turning is quiet."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from devices.sources.loop_watchdog import LoopWatchdog


@pytest.fixture
def running_loop() -> Iterator[tuple[asyncio.AbstractEventLoop, threading.Thread]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop, thread
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def _blocks_the_loop(seconds: float, done: threading.Event) -> None:
    time.sleep(seconds)
    done.set()


def test_a_blocked_loop_is_reported_once_with_the_blocking_call_then_its_recovery(running_loop, caplog):
    loop, thread = running_loop
    caplog.set_level(logging.WARNING, logger="devices.sources.loop_watchdog")
    dog = LoopWatchdog(loop, thread, "test", period_s=0.05, stall_s=0.3).start()
    try:
        time.sleep(0.3)  # turning: nothing to say
        assert dog.stalls == 0 and not caplog.records
        done = threading.Event()
        loop.call_soon_threadsafe(_blocks_the_loop, 1.2, done)
        assert done.wait(5)
        deadline = time.monotonic() + 3
        while len(caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        dog.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert dog.stalls == 1, messages
    assert len(messages) == 2, messages
    assert "has not turned" in messages[0] and "_blocks_the_loop" in messages[0], messages[0]
    assert "turns again" in messages[1], messages[1]
    assert 0.6 <= dog.longest_s <= 1.5, dog.longest_s
