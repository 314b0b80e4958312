"""Handing events from control-system threads to the bridge's loop, one wake-up per batch.

``loop.call_soon_threadsafe`` per event writes to the loop's self-pipe and wakes it for every
CA monitor: at 20,000 updates/s that alone was a tenth of the bridge's time (py-spy, see
docs/design.md). Events go into one queue per loop instead; only the event that finds the
queue idle wakes the loop, which then runs everything queued in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Inbox:
    """A loop's queue of ``fn(arg)`` calls posted from other threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._armed = False
        self.wakeups = 0
        self.events = 0

    def post(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Runs on a CA or ophyd callback thread. Must not block."""
        self._queue.append((fn, arg))
        if not self._armed:
            self._armed = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                pass  # the loop is closed: the bridge has shut down

    def _drain(self) -> None:
        # Disarm first: an event posted from here on arms a new wake-up, so none is left behind.
        self._armed = False
        self.wakeups += 1
        queue = self._queue
        for _ in range(len(queue)):
            fn, arg = queue.popleft()
            self.events += 1
            try:
                fn(arg)
            except Exception:  # noqa: BLE001 - one bad event must not drop the rest
                log.exception("handling %r failed", getattr(fn, "__qualname__", fn))


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox] = weakref.WeakKeyDictionary()


def inbox_for(loop: asyncio.AbstractEventLoop) -> Inbox:
    """The one inbox of ``loop``; sources of one bridge share it, so events stay in order."""
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes.setdefault(loop, Inbox(loop))
    return inbox
