"""Sockets of one login share the answer to "who is this now" briefly; a change drops it."""

from devices.access import principal_cache
from devices.access.principal_cache import principal_cached, principal_forget
from devices.access.rules import Principal


async def test_shared_within_the_ttl_and_dropped_on_change():
    principal_cache._cache.clear()
    loads = []

    async def load():
        loads.append(1)
        return Principal("op")

    for _ in range(5):
        assert (await principal_cached(("op", "s1", None), 7, 60.0, load)).username == "op"
    assert len(loads) == 1
    principal_forget(7)
    await principal_cached(("op", "s1", None), 7, 60.0, load)
    assert len(loads) == 2
    await principal_cached(("op", "s1", None), 7, 0.0, load)  # expired at once
    assert len(loads) == 3
