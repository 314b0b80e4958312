"""Notice an event loop that stopped turning, and say where it is stuck.

A loop blocked by one call (a library that waits on a lock or a socket where it should not)
looks from outside like lost messages: sets that never answer, values that stop. A watchdog
thread asks the loop to run a tick every ``period_s``; when a tick is ``stall_s`` late it logs
a warning with the stack of the loop's thread, once per stall, and when the loop turns again
it logs how long the stall lasted. Costs one callback per period on the watched loop.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)

PERIOD_S = 0.5
STALL_S = 3.0


class LoopWatchdog:
    """Watches one loop running on one thread (the thread whose stack a stall reports)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread, name: str, *,
                 period_s: float = PERIOD_S, stall_s: float = STALL_S) -> None:
        self.name = name
        self._loop = loop
        self._thread = thread
        self._period_s = period_s
        self._stall_s = stall_s
        self._last_tick = time.monotonic()
        self._stalled_since: float | None = None
        self.stalls = 0  # stalls seen (tests, status)
        self.longest_s = 0.0
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name=f"{name}-watchdog", daemon=True)

    def start(self) -> LoopWatchdog:
        self._watcher.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _tick(self) -> None:
        """Runs on the watched loop: it turned."""
        self._last_tick = time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(self._period_s):
            if self._loop.is_closed() or not self._thread.is_alive():
                return
            try:
                self._loop.call_soon_threadsafe(self._tick)
            except RuntimeError:  # closed meanwhile
                return
            self._check(time.monotonic())

    def _check(self, now: float) -> None:
        late = now - self._last_tick
        if late >= self._stall_s + self._period_s:
            if self._stalled_since is None:
                self._stalled_since = self._last_tick
                self.stalls += 1
                log.warning("the %s event loop has not turned for %.1f s; its thread is at:\n%s",
                            self.name, late, self.stack())
        elif self._stalled_since is not None:
            lasted = self._last_tick - self._stalled_since
            self.longest_s = max(self.longest_s, lasted)
            self._stalled_since = None
            log.warning("the %s event loop turns again after a stall of %.1f s", self.name, lasted)

    def stack(self) -> str:
        """Where the loop's thread is now."""
        frame = sys._current_frames().get(self._thread.ident or -1)
        if frame is None:
            return "  (thread gone)"
        return "".join(traceback.format_stack(frame))


def watch(loop: asyncio.AbstractEventLoop, thread: threading.Thread, name: str, **kwargs: float) -> LoopWatchdog:
    """Start watching ``loop`` (run by ``thread``)."""
    return LoopWatchdog(loop, thread, name, **kwargs).start()
