"""Bridge, hub and pv-socket session over the in-memory layer with a simulated source."""

import asyncio

import pytest

from devices.sockets.pv_session import PvSession
from tests.support.sim import SimSource
from tests.support.stack import Client, Stack


@pytest.fixture
async def stack():
    SimSource.registry.clear()
    async with Stack(SimSource, scalar_rate_hz=10.0, release_grace_s=0.2, connect_timeout_s=0.3) as s:
        yield s


async def wait_for_source(name):
    for _ in range(100):
        if name in SimSource.registry and SimSource.registry[name].opened:
            return SimSource.registry[name]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no source for {name}")


def is_value(pv):
    return lambda m: m.get("pv") == pv and "value" in m and m.get("sub_type") != "meta"


async def test_one_source_for_many_clients_and_release_after_grace(stack):
    clients = [Client(PvSession, stack) for _ in range(5)]
    for c in clients:
        await c.send({"action": "subscribe", "pv": "S:a"})
    source = await wait_for_source("S:a")
    source.connect()
    source.emit(1.25)
    for c in clients:
        msg = await c.next(where=is_value("S:a"))
        assert msg["value"] == 1.25 and msg["connected"] is True
    assert len(SimSource.registry) == 1
    for c in clients:
        await c.session.end()
    await asyncio.sleep(0.8)
    assert source.closed and "S:a" not in stack.bridge.entries


async def test_rate_cap_keeps_latest_and_alarm_bypasses_it(stack):
    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "S:r"})
    source = await wait_for_source("S:r")
    source.connect()
    source.emit(0.0, timestamp=1.0)
    await client.next(where=is_value("S:r"))
    for i in range(1, 50):
        source.emit(float(i), timestamp=1.0 + i)
    got = await client.quiet(0.35)
    values = [m["value"] for m in got if is_value("S:r")(m)]
    assert values[-1] == 49.0
    assert len(values) <= 4  # 10 Hz cap over ~0.35 s, not 49 messages
    source.emit(50.0, timestamp=100.0, severity=2, status=3)
    start = asyncio.get_running_loop().time()
    meta = await client.next(where=lambda m: m.get("sub_type") == "meta", timeout=1)
    assert meta["severity"] == 2
    assert asyncio.get_running_loop().time() - start < 0.05


async def test_disconnect_reaches_every_client_at_once(stack):
    a, b = Client(PvSession, stack), Client(PvSession, stack)
    for c in (a, b):
        await c.send({"action": "subscribe", "pv": "S:d"})
    source = await wait_for_source("S:d")
    source.connect()
    source.emit(3.0)
    for c in (a, b):
        await c.next(where=is_value("S:d"))
    source.disconnect()
    for c in (a, b):
        msg = await c.next(where=is_value("S:d"), timeout=0.5)
        assert msg["connected"] is False


async def test_never_connecting_pv_is_reported_not_connected(stack):
    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "S:missing"})
    summary = await client.next()
    assert summary["subscribed"] == ["S:missing"]
    msg = await client.next(where=is_value("S:missing"), timeout=2)
    assert msg["connected"] is False and msg["value"] is None


async def test_set_outcomes(stack):
    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "S:s"})
    source = await wait_for_source("S:s")
    source.connect()
    source.emit(0.0)
    await client.send({"action": "set", "pv": "S:s", "value": 5, "id": 1})
    done = await client.next(where=lambda m: m.get("id") == 1)
    assert done["status"] == "done" and source.puts == [5]
    await client.send({"action": "set", "pv": "S:s", "value": 50, "id": 2})
    refused = await client.next(where=lambda m: m.get("id") == 2)
    assert refused["code"] == "out_of_limits" and "error" in refused
    source.put_result = (False, "Write access denied")
    await client.send({"action": "set", "pv": "S:s", "value": 1, "id": 3})
    assert (await client.next(where=lambda m: m.get("id") == 3))["code"] == "ioc_refused"
    source.put_result = None  # the IOC never completes
    await client.send({"action": "set", "pv": "S:s", "value": 1, "timeout": 0.2, "id": 4})
    assert (await client.next(where=lambda m: m.get("id") == 4))["code"] == "timeout"
    await client.send({"action": "set", "pv": "S:never", "value": 1, "timeout": 0.2, "id": 5})
    assert (await client.next(where=lambda m: m.get("id") == 5))["code"] == "not_connected"


async def test_read_only_subscription_refuses_set_and_reports_no_write_access(stack):
    client = Client(PvSession, stack)
    await client.send({"action": "subscribeReadOnly", "pv": "S:ro"})
    source = await wait_for_source("S:ro")
    source.connect()
    source.emit(1.0)
    msg = await client.next(where=is_value("S:ro"))
    assert msg["write_access"] is False and msg["read_access"] is True
    await client.send({"action": "set", "pv": "S:ro", "value": 2, "id": "w"})
    reply = await client.next(where=lambda m: m.get("id") == "w")
    assert reply["code"] == "read_only" and source.puts == []


async def test_big_arrays_are_encoded_off_the_loop_and_latest_wins(stack):
    import numpy as np

    from devices.bridge.entry import ENCODE_OFF_LOOP
    from devices.sources.source import ChannelInfo

    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "S:big"})
    source = await wait_for_source("S:big")
    size = ENCODE_OFF_LOOP + 5000
    source.info_value = ChannelInfo(kind="float", count=size)
    source.connect()
    for i in range(5):
        source.emit(np.full(size, float(i)), timestamp=10.0 + i)
    values = []
    while not values or values[-1][0] != 4.0:
        msg = await client.next(where=is_value("S:big"), timeout=3)
        assert len(msg["value"]) == size
        values.append(msg["value"])
    assert all(len(set(v)) == 1 for v in values)  # never a torn or mixed array
    assert len(values) <= 3  # intermediate arrays were skipped, not queued


async def test_a_source_at_the_cap_rate_is_never_deferred(stack):
    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "S:steady"})
    source = await wait_for_source("S:steady")
    source.connect()
    source.emit(0.0, timestamp=1.0)
    await client.next(where=is_value("S:steady"))
    entry = stack.bridge.entries["S:steady"]
    deferred = 0
    for i in range(1, 11):
        await asyncio.sleep(0.098)  # a 10 Hz source with jitter against a 10 Hz cap
        source.emit(float(i), timestamp=1.0 + i)
        deferred += entry._timer is not None
    assert deferred == 0


async def test_a_connected_pv_whose_metadata_came_late_is_asked_again_and_then_streams(stack, caplog):
    """An ophyd-async source described only after the bridge's metadata read gave up (a busy
    runtime loop) once left the PV connected but never ready: no values, every set refused.
    The warning names the PV as a field (a JSON log line's ``pv``)."""
    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "S:late"})
    source = await wait_for_source("S:late")
    known, source.info_value = source.info_value, None  # not described yet
    source.connect()
    source.emit(3.5, timestamp=2.0)
    got = await client.quiet(0.3)
    assert not [m for m in got if is_value("S:late")(m)], got  # not ready: nothing published
    source.info_value = known  # described now; the bridge's retry (0.5 s) finds it
    msg = await client.next(where=is_value("S:late"), timeout=3)
    assert msg["value"] == 3.5 and msg["connected"] is True, msg
    await client.send({"action": "set", "pv": "S:late", "value": 1.0, "id": "s"})
    reply = await client.next(where=lambda m: m.get("id") == "s", timeout=3)
    assert reply["status"] == "done" and source.puts == [1.0], reply
    asked = [r for r in caplog.records if "metadata did not come" in r.getMessage()]
    assert asked and asked[0].levelname == "WARNING" and asked[0].pv == "S:late", caplog.text
