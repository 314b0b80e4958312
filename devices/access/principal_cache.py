"""Who a socket's user is now, shared by the sockets of a process for a short while.

Each open socket re-checks its user every OAS_ACCESS_REVIEW_S; the check is several queries
(~3 ms, bench/README.md "Writes"). Sockets of the same login (a user's screens, a script's
connections) share one answer for half a review period; an announced change of that user
drops it at once, so logouts and revocations are never served from here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable

from .rules import Principal

_cache: dict[Hashable, tuple[float, int, Principal | None]] = {}
MAX_ENTRIES = 10000


async def principal_cached(key: Hashable, user_id: int, ttl: float,
                           load: Callable[[], Awaitable[Principal | None]]) -> Principal | None:
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < ttl:
        return hit[2]
    principal = await load()
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    _cache[key] = (now, user_id, principal)
    return principal


def principal_forget(user_id: object) -> None:
    """Drop every cached answer about ``user_id`` (its login state or rights changed)."""
    for key in [k for k, v in _cache.items() if v[1] == user_id]:
        _cache.pop(key, None)
