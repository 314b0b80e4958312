"""A pv-socket client and an ophyd device on the same PV share one CA channel safely."""

from __future__ import annotations

import asyncio

import epics
import pytest
from ophyd import EpicsSignalRO

pytestmark = [pytest.mark.system, pytest.mark.timeout(60), pytest.mark.django_db(transaction=True)]


async def test_releasing_a_pv_socket_channel_keeps_ophyds_pv(ioc, ws):
    signal = EpicsSignalRO(ioc.pvname("iwave"), name="iw")  # as a startup file would make it
    await asyncio.to_thread(signal.wait_for_connection, 10)
    key = next(k for k in epics.pv._PVcache_ if k[0] == ioc.pvname("iwave"))
    ophyds_pv = epics.pv._PVcache_[key]
    client = await ws()
    await client.send({"action": "subscribe", "pv": ioc.pvname("iwave"), "id": 1})
    await client.next(lambda m: m.get("pv") == ioc.pvname("iwave") and "value" in m and m["connected"])
    await client.send({"action": "unsubscribe", "pv": ioc.pvname("iwave"), "id": 2})
    await client.next(lambda m: m.get("id") == 2)
    await asyncio.sleep(2.5)  # past the release grace: the bridge closed its PV object
    # ophyd's PV is still the cached one: a second device on this PV shares it (and its
    # reference count) instead of getting a PV whose channel the first one's release clears.
    assert epics.pv._PVcache_.get(key) is ophyds_pv
    values: list = []
    token = signal.subscribe(lambda value=None, **_: values.append(value), run=False)
    await asyncio.sleep(1.5)  # iwave updates at 2 Hz
    signal.unsubscribe(token)
    assert values, "ophyd's subscription stopped getting updates"
    signal.destroy()
