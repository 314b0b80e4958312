"""ophyd Signals behind the bridge (real ophyd soft signals; no IOC needed)."""

import asyncio

import pytest
from ophyd import Signal
from ophyd.sim import SynAxis

from devices.sockets.pv_session import PvSession
from devices.sources.ophyd_source import OphydSignalSource
from tests.support.stack import Client, Stack


def is_value(name):
    return lambda m: m.get("pv") == name and "value" in m and m.get("sub_type") != "meta"


@pytest.fixture
async def signals():
    table = {"soft": Signal(name="soft", value=1.5), "axis": SynAxis(name="axis", delay=0.2)}

    def factory(name, loop, sink):
        obj = table[name]
        if isinstance(obj, SynAxis):  # values from the readback, sets move the positioner
            return OphydSignalSource(name, loop, sink, obj.readback, mover=obj)
        return OphydSignalSource(name, loop, sink, obj)

    async with Stack(factory, release_grace_s=0.2, connect_timeout_s=0.5) as stack:
        yield stack, table


async def test_values_and_external_writes_reach_clients(signals):
    stack, table = signals
    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "soft"})
    first = await client.next(where=is_value("soft"))
    assert first["value"] == 1.5 and first["connected"] is True
    await asyncio.to_thread(table["soft"].put, 7.25)
    assert (await client.next(where=is_value("soft")))["value"] == 7.25


async def test_set_goes_through_ophyd_status(signals):
    stack, table = signals
    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "axis"})
    await client.next(where=is_value("axis"))
    await client.send({"action": "set", "pv": "axis", "value": 3.0, "id": "mv"})
    loop = asyncio.get_running_loop()
    started = loop.time()
    done = moved = None
    while done is None or moved is None:  # the reply and the new readback, in either order
        msg = await client.next()
        if msg.get("id") == "mv":
            done = msg
            elapsed = loop.time() - started
        elif is_value("axis")(msg) and msg["value"] == 3.0:
            moved = msg
    assert done["status"] == "done"
    assert elapsed >= 0.15  # SynAxis reports completion after its 0.2 s move
    assert moved["write_access"] is True  # a read-only readback, but the positioner moves


async def test_release_removes_only_our_callbacks(signals):
    stack, table = signals
    seen = []
    token = table["soft"].subscribe(lambda value, **_: seen.append(value), run=False)
    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "soft"})
    await client.next(where=is_value("soft"))
    await client.session.end()
    await asyncio.sleep(0.8)  # grace 0.2 s plus housekeeping
    assert "soft" not in stack.bridge.entries
    table["soft"].put(2.0)
    assert seen == [2.0]  # the other subscriber still gets values
    table["soft"].unsubscribe(token)
