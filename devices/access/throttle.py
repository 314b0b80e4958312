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
    ticket: int = 0
    users: int = 0


class Coalescer:
    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slot] = {}

    async def submit(self, key: Hashable, job: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Run ``job`` after the one in progress for ``key``, unless a newer one arrives first."""
        slot = self._slots.setdefault(key, _Slot())
        slot.ticket += 1
        mine = slot.ticket
        slot.users += 1
        try:
            async with slot.lock:
                if mine != slot.ticket:
                    return dict(SUPERSEDED)
                return await job()
        finally:
            slot.users -= 1
            if slot.users == 0:
                self._slots.pop(key, None)


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
