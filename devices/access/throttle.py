"""Write limits: a per-user rate cap, and latest-wins coalescing per (user, target).

A dragged slider sends dozens of sets a second for one PV: while one of them is being
written, only the newest waiting one goes next and the others are answered "superseded",
so the IOC sees a short chain of puts, not a queue of hundreds. Process-wide, in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

SUPERSEDED: dict[str, Any] = {"status": "superseded",
                              "message": "A newer set of the same target from the same user replaced this one"}


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    issued: int = 0  # places handed out so far
    holding: set[int] = field(default_factory=set)  # places not yet given up


class Place:
    """A place in the line of one (user, target), taken when the set arrives."""

    def __init__(self, owner: Coalescer, key: Hashable, slot: _Slot) -> None:
        self._owner, self._key, self._slot = owner, key, slot
        slot.issued += 1
        self.number = slot.issued
        slot.holding.add(self.number)
        self._done = False

    async def run(self, job: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Run ``job`` after the one in progress, unless a set that arrived later still waits
        (one refused meanwhile, by a rule or the rate limit, has left and supersedes nothing)."""
        try:
            async with self._slot.lock:
                if self.number != max(self._slot.holding):
                    return dict(SUPERSEDED)
                return await job()
        finally:
            self.leave()

    def leave(self) -> None:
        """Give the place up (also when the set was refused before it could run)."""
        if self._done:
            return
        self._done = True
        self._slot.holding.discard(self.number)
        if not self._slot.holding and self._owner._slots.get(self._key) is self._slot:
            del self._owner._slots[self._key]


class Coalescer:
    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slot] = {}

    def place(self, key: Hashable) -> Place:
        """Take a place now, before anything awaits: which set is newest is decided by arrival,
        not by whichever check (rules, interlock) happens to finish first."""
        return Place(self, key, self._slots.setdefault(key, _Slot()))

    async def submit(self, key: Hashable, job: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Run ``job`` after the one in progress for ``key``, unless a newer one arrives first."""
        return await self.place(key).run(job)


class RateLimiter:
    """A token bucket per user: ``rate`` writes a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def allow(self, who: Hashable) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens, at = self._buckets.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[who] = (tokens, now)
            return False
        self._buckets[who] = (tokens - 1.0, now)
        if len(self._buckets) > 10000:  # bounded: forget the oldest users
            for key in list(self._buckets)[:1000]:
                del self._buckets[key]
        return True
