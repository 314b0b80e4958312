"""Predicates and settings shared by the socket tests."""

from __future__ import annotations

from typing import Any

# Short grace periods and small limits so tests reach them quickly.
TEST_OAS: dict[str, Any] = {
    "release_grace_s": 1.0,
    "connect_timeout_s": 1.5,
    "lease_s": 6.0,
    "max_subscriptions": 50,
    "max_names_per_request": 40,
    "load_devices_on_start": False,  # tests reload explicitly, with database access granted
    "device_state_period_s": 0.3,
    # The protocol tests run in the drop-in compatibility mode (anonymous clients write, as
    # with ophyd-websocket); tests/system_tests/test_access.py checks the policy itself.
    "anonymous_writes": True,
    "access_review_s": 0.5,
    "write_rate_hz": 0.0,  # no per-user cap in the protocol tests (test_access.py sets one)
}


def value_of(pv: str):
    return lambda m: m.get("pv") == pv and m.get("sub_type") != "meta" and "value" in m


def meta_of(pv: str):
    return lambda m: m.get("pv") == pv and m.get("sub_type") == "meta"


def reply(request_id: Any):
    return lambda m: m.get("id") == request_id


async def read_until(conn: Any, where: Any, timeout: float = 15.0) -> dict[str, Any]:
    """The next message (JSON text) on a ``websockets`` connection that ``where`` accepts."""
    import asyncio
    import json

    skipped: list[Any] = []  # for the report of a timeout
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads(await conn.recv())
                if where(message):
                    return message
                skipped.append(message)
    except TimeoutError:
        raise TimeoutError(f"no awaited message within {timeout:g} s; {len(skipped)} others came, "
                             f"the last: {skipped[-6:]}") from None


async def each(conn: Any, *wanted: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The first message matching each predicate, whatever their order on the wire (a set's
    reply and the value it caused may come either way round)."""
    found: dict[int, dict[str, Any]] = {}
    while len(found) < len(wanted):
        message = await read_until(conn, lambda m: any(w(m) for i, w in enumerate(wanted) if i not in found),
                                   timeout)
        found[next(i for i, w in enumerate(wanted) if i not in found and w(message))] = message
    return [found[i] for i in range(len(wanted))]
