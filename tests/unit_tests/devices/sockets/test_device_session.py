"""Device socket session, bridge and hub over the in-memory layer with soft ophyd devices.

Soft ophyd objects (Signal, SoftPositioner) run in process, so the device machinery is
tested here without an IOC; the system tests run the same against EpicsSignal/EpicsMotor.
"""

import asyncio

import pytest
from ophyd import Component as Cpt
from ophyd import Device, Signal, SoftPositioner

from devices.sockets.device_session import DeviceSession
from devices.startup.loader import FileResult, LoadResult
from tests.support.sim import SimSource
from tests.support.stack import Client, Stack


class Pair(Device):
    a = Cpt(Signal, value=1.0)
    b = Cpt(Signal, value=2.0)


@pytest.fixture
async def stack():
    async with Stack(SimSource, scalar_rate_hz=0, release_grace_s=0.2, connect_timeout_s=0.3) as s:
        yield s


async def install(stack, **objects):
    """Put objects in the bridge's registry as a reload would, and announce it."""
    result = LoadResult(objects=objects, files=[FileResult("t.py", "t.py", True, list(objects))], duration_s=0.0)
    stack.bridge.registry.apply(result)
    await stack.bridge.devices_reloaded()


def value_of(device, signal=None, value=None):
    return lambda m: (m.get("device") == device and "value" in m and m.get("sub_type") != "meta"
                      and (signal is None or m["signal"] == signal) and (value is None or m["value"] == value))


def reply(rid):
    return lambda m: m.get("id") == rid


async def test_signal_subscribe_and_set(stack):
    await install(stack, sig=Signal(name="sig", value=1.5))
    client = Client(DeviceSession, stack)
    await client.send({"action": "subscribe", "device": "sig", "id": 1})
    assert (await client.next(where=reply(1)))["subscribed"] == ["sig"]
    first = await client.next(where=value_of("sig"))
    assert first["value"] == 1.5 and first["connected"] and first["signal"] == "sig"
    await client.send({"action": "set", "device": "sig", "value": 7, "id": 2})
    done, _ = await client.expect_all(reply(2), value_of("sig", value=7.0))
    assert done["status"] == "done" and done["message"] == "Successfully set sig to 7"


async def test_positioner_limits_and_move(stack):
    await install(stack, pos=SoftPositioner(name="pos", init_pos=0.0, limits=(-5.0, 5.0)))
    client = Client(DeviceSession, stack)
    await client.send({"action": "subscribe", "device": "pos", "id": 1})
    meta = await client.next(where=lambda m: m.get("sub_type") == "meta")
    assert (meta["lower_ctrl_limit"], meta["upper_ctrl_limit"]) == (-5.0, 5.0)
    await client.send({"action": "set", "device": "pos", "value": 9, "id": 2})
    err = await client.next(where=reply(2))
    assert err["code"] == "out_of_limits" and err["signal"] == "pos"
    await client.send({"action": "set", "device": "pos", "value": 3, "id": 3})
    done, moved = await client.expect_all(reply(3), value_of("pos", value=3.0))
    assert done["status"] == "done" and moved["timestamp"] is not None


async def test_connection_is_aggregated_over_the_devices_signals(stack):
    pair = Pair(name="pair")
    await install(stack, pair=pair)
    client = Client(DeviceSession, stack)
    await client.send({"action": "subscribe", "device": "pair"})
    await client.next(where=lambda m: value_of("pair", "pair_a")(m) and m["connected"])
    # Signal b drops (as an EPICS signal would): a's messages now say the device is down.
    pair.b._metadata["connected"] = False
    pair.b._run_metadata_callbacks()
    down = await client.next(where=lambda m: value_of("pair", "pair_a")(m) and not m["connected"])
    assert down["signal_connected"] is True
    pair.b._metadata["connected"] = True
    pair.b._run_metadata_callbacks()
    pair.b.put(3.0)  # the first value after a reconnection, as a CA monitor sends it
    await client.next(where=lambda m: value_of("pair", "pair_a")(m) and m["connected"])


async def test_reload_rebinds_to_the_new_object_and_reports_removed_devices(stack):
    await install(stack, sig=Signal(name="sig", value=1.0), other=Signal(name="other", value=0))
    client = Client(DeviceSession, stack)
    await client.send({"action": "subscribe", "devices": ["sig", "other"], "id": 1})
    await client.next(where=value_of("sig", value=1.0))
    await install(stack, sig=Signal(name="sig", value=42.0))
    gone = await client.next(where=lambda m: m.get("code") == "device_gone")
    assert gone["device"] == "other"
    await client.next(where=value_of("sig", value=42.0))
    await client.send({"action": "set", "device": "sig", "value": 5, "id": 2})
    assert (await client.expect_all(reply(2)))[0]["status"] == "done"
    assert stack.bridge.registry.get("sig").obj.get() == 5  # the new object was written


async def test_unsubscribe_of_one_client_keeps_the_other(stack):
    sig = Signal(name="sig", value=0)
    await install(stack, sig=sig)
    a, b = Client(DeviceSession, stack), Client(DeviceSession, stack)
    for c in (a, b):
        await c.send({"action": "subscribe", "device": "sig"})
        await c.next(where=value_of("sig"))
    await a.send({"action": "unsubscribe", "device": "sig", "id": 1})
    assert (await a.next(where=reply(1)))["unsubscribed"] == ["sig"]
    sig.put(11)
    await b.next(where=value_of("sig", value=11))
    assert not [m for m in await a.quiet(0.2) if value_of("sig")(m)]


async def test_rate_cap_coalesces_device_updates_latest_wins():
    async with Stack(SimSource, scalar_rate_hz=10.0, release_grace_s=0.2, connect_timeout_s=0.3) as capped:
        sig = Signal(name="sig", value=0.0)
        await install(capped, sig=sig)
        client = Client(DeviceSession, capped)
        await client.send({"action": "subscribe", "device": "sig"})
        await client.next(where=value_of("sig", value=0.0))
        for i in range(1, 50):
            sig.put(float(i))
        values = [m["value"] for m in await client.quiet(0.45) if value_of("sig")(m)]
        assert values[-1] == 49.0 and len(values) <= 6  # ~10 Hz, not 49 messages


async def test_a_stuck_device_client_is_closed_with_1013():
    async with Stack(SimSource, max_pending_replies=3) as small:
        await install(small, sig=Signal(name="sig", value=0.0))
        async def never(text):  # a socket that accepts nothing
            await asyncio.Event().wait()

        client = Client(DeviceSession, small, send=never)
        for i in range(10):
            await client.send({"action": "refresh", "id": i})
        await asyncio.sleep(0.1)
        assert client.closed_with == 1013 and client.session.ended
